"""An ssl_context hook's sni_callback and keylog_filename on the C TLS
transport (sync, gthread, gevent): the callback is called as CPython calls
it, (ssl_socket, server_name, ssl_context), in the worker, and a context it
assigns to ssl_socket.context serves the handshake (checked with curl
--resolve and openssl s_client -servername against two certificates); an
int it returns is the alert, an exception fails the handshake. The key log
gets the NSS lines the client's own key log has (TLS 1.3 and 1.2).
Certificates from trustme, per module."""

import json
import os
import socket
import ssl
import subprocess

import pytest
import trustme

import cgtest

WORKERS = ["sync", "gthread", "gevent"]
SANITIZED = "ASAN_OPTIONS" in os.environ
# as test_gevent.py: greenlet's stack copies under ASan
GEVENT_ENV = ({"ASAN_OPTIONS": os.environ["ASAN_OPTIONS"]
               + ":detect_stack_use_after_return=1:replace_intrin=0"} if SANITIZED else None)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    files = {"dir": d, "ca": str(d / "ca.pem")}
    ca.cert_pem.write_to_path(files["ca"])
    for name, hosts in (("default", ("localhost", "127.0.0.1")), ("a", ("a.example",)),
                        ("b", ("b.example",))):
        c = ca.issue_cert(*hosts)
        files[name] = str(d / ("%s.pem" % name))
        c.private_key_and_cert_chain_pem.write_to_path(files[name])
        files[name + "_der"] = ssl.PEM_cert_to_DER_cert(c.cert_chain_pems[0].bytes().decode())
    return files


@pytest.fixture(scope="module")
def gsite(tmp_path_factory):
    return cgtest.pinned_site(tmp_path_factory.mktemp("gevent-site"), "gevent", "greenlet",
                              "zope.event", "zope.interface")


def start(cg, kind, conf, pki, gsite):
    args = ["-k", kind, "-c", conf, "--certfile", pki["default"], "--log-level", "debug"]
    env = None
    if kind == "gthread":
        args += ["--threads", "2"]
    if kind == "gevent":
        args += ["--pythonpath", gsite]
        env = GEVENT_ENV
    return cg("tls_app:app", args, env=env)


SNI_CONF = """
import json, os, ssl

CALLS = %(calls)r
CTX = {}


def ssl_context(conf, factory):
    ctx = factory()
    for name in ("a", "b"):
        other = factory()
        other.load_cert_chain(%(pki)r[name])
        CTX[name + ".example"] = other

    def sni(sock, server_name, context):
        with open(CALLS, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "name": server_name,
                                "given": context is ctx, "sock_ctx": sock.context is ctx,
                                "server_side": sock.server_side}) + "\\n")
        if server_name == "boom.example":
            raise RuntimeError("SNI-BOOM")
        if server_name == "nope.example":
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        if server_name in CTX:
            sock.context = CTX[server_name]
        return None

    ctx.sni_callback = sni
    return ctx
"""


def curl_resolve(srv, pki, host):
    """curl --resolve host:port:127.0.0.1 https://host:port/: verifies the
    certificate against host; (returncode, stdout, stderr)."""
    url = "https://%s:%d/" % (host, srv.port)
    res = subprocess.run(["curl", "-sS", "--max-time", "30", "--cacert", pki["ca"], "--resolve",
                          "%s:%d:127.0.0.1" % (host, srv.port), url],
                         capture_output=True, text=True, timeout=60)
    return res.returncode, res.stdout, res.stderr


def s_client(srv, servername=None):
    """The certificate (DER) openssl s_client got, and its output."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port]
    cmd += ["-servername", servername] if servername else ["-noservername"]
    res = subprocess.run(cmd, input=b"", capture_output=True, timeout=60)
    out = res.stdout.decode("latin1")
    if "-----BEGIN CERTIFICATE-----" not in out:
        return None, out + res.stderr.decode("latin1")
    pem = out[out.index("-----BEGIN CERTIFICATE-----"):out.index("-----END CERTIFICATE-----") + 25]
    return ssl.PEM_cert_to_DER_cert(pem), out


def calls(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", WORKERS)
def test_sni_callback_switches_the_certificate(cg, pki, tmp_path, gsite, kind):
    log = str(tmp_path / "sni.jsonl")
    conf = tmp_path / "conf.py"
    conf.write_text(SNI_CONF % {"calls": log, "pki": {"a": pki["a"], "b": pki["b"]}})
    srv = start(cg, kind, str(conf), pki, gsite)

    # curl checks each certificate against the name it asked for
    for host in ("a.example", "b.example"):
        rc, out, err = curl_resolve(srv, pki, host)
        assert rc == 0, err
        assert json.loads(out)["scheme"] == "https"
    der, out = s_client(srv, "b.example")
    assert der == pki["b_der"], out
    der, out = s_client(srv, "a.example")
    assert der == pki["a_der"], out
    # a name it does not know: the hook's own context
    der, out = s_client(srv, "other.example")
    assert der == pki["default_der"], out
    # no SNI at all: called with None, the hook's context
    der, out = s_client(srv, None)
    assert der == pki["default_der"], out

    got = calls(log)
    names = [c["name"] for c in got]
    for want in ("a.example", "b.example", "other.example", None):
        assert want in names
    workers = set(srv.worker_pids())
    assert all(c["pid"] in workers and c["pid"] != srv.pid for c in got)
    assert all(c["given"] and c["sock_ctx"] and c["server_side"] for c in got)

    # an int is the alert to send, an exception fails the handshake
    der, out = s_client(srv, "nope.example")
    assert der is None and "unrecognized name" in out, out
    der, out = s_client(srv, "boom.example")
    assert der is None and "handshake failure" in out, out
    srv.wait_log(r"RuntimeError: SNI-BOOM")
    # the worker goes on
    rc, out, err = curl_resolve(srv, pki, "b.example")
    assert rc == 0, err
    assert srv.alive()


def read_keylog(path):
    with open(path) as f:
        return f.read().splitlines()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", WORKERS)
def test_keylog_filename(cg, pki, tmp_path, gsite, kind):
    server_log = str(tmp_path / "server.keys")
    conf = tmp_path / "conf.py"
    conf.write_text("def ssl_context(conf, factory):\n"
                    "    ctx = factory()\n"
                    "    ctx.keylog_filename = %r\n"
                    "    return ctx\n" % server_log)
    srv = start(cg, kind, str(conf), pki, gsite)
    client_log = str(tmp_path / "client.keys")
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        ctx = ssl.create_default_context(cafile=pki["ca"])
        ctx.maximum_version = version
        ctx.keylog_filename = client_log
        with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert cgtest.read_until_close(s, timeout=30).startswith(b"HTTP/1.1 200")
    server = read_keylog(server_log)
    client = read_keylog(client_log)
    # Python's first line in a new file, then the NSS lines
    assert server[0] == "# TLS secrets log file, generated by OpenSSL / Python"
    labels = {line.split(" ")[0] for line in server[1:]}
    assert {"CLIENT_RANDOM", "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"} <= labels
    # the same secrets the client derived: the lines decrypt these sessions
    client_lines = {line for line in client if not line.startswith("#")}
    assert set(server[1:]) == client_lines
