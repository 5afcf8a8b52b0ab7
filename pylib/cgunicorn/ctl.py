"""cgunicornc: talk to a running cgunicorn (or Gunicorn 25.1+) master through
its control socket.

    cgunicornc                       interactive (readline, history)
    cgunicornc show workers          one command, then exit
    cgunicornc -c "worker add 2"     the same, as Gunicorn's gunicornc spells it
    cgunicornc --json show stats     the answer's data as JSON
    cgunicornc --socket PATH ...     another socket than the default

The protocol is Gunicorn's (gunicorn/ctl/protocol.py): each message is a
4-byte big-endian length and that many bytes of JSON; a request is
{"id": N, "command": "...", "args": [...]}, an answer {"id": N, "status":
"ok", "data": {...}} or {"id": N, "status": "error", "error": "..."}.

This file uses the standard library only and runs as a script too, which is
how the standalone build's cgunicornc launcher starts it.
"""
import argparse
import json
import os
import shlex
import socket
import struct
import sys

MAX_MESSAGE = 16 * 1024 * 1024  # Gunicorn's limit on one message


class CtlError(Exception):
    """A failed exchange, or an answer with status "error"."""


def default_socket():
    """Gunicorn's default path: $XDG_RUNTIME_DIR/gunicorn.ctl when that is a
    directory, else ~/.gunicorn/gunicorn.ctl."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return os.path.join(xdg, "gunicorn.ctl")
    return os.path.join(os.path.expanduser("~"), ".gunicorn", "gunicorn.ctl")


def _recv_exactly(sock, n):
    chunks = []
    while n > 0:
        b = sock.recv(min(n, 65536))
        if not b:
            raise CtlError("connection closed by the server")
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def encode(message):
    """One framed message (bytes) for a dict."""
    payload = json.dumps(message).encode("utf-8")
    return struct.pack(">I", len(payload)) + payload


def read_message(sock):
    """Read one framed message; returns the decoded JSON."""
    (n,) = struct.unpack(">I", _recv_exactly(sock, 4))
    if n > MAX_MESSAGE:
        raise CtlError("answer too large: %d bytes" % n)
    try:
        return json.loads(_recv_exactly(sock, n).decode("utf-8"))
    except ValueError as e:
        raise CtlError("invalid answer: %s" % e)


class Client:
    """A connection to a control socket; one request at a time."""

    def __init__(self, path, timeout=30.0):
        self.path = path
        self.timeout = timeout
        self.sock = None
        self.last_id = 0

    def connect(self):
        if self.sock is not None:
            return
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.path)
        except OSError as e:
            s.close()
            raise CtlError("cannot connect to %s: %s" % (self.path, e.strerror or e))
        self.sock = s

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, command, args=None):
        """Send one command; returns the answer's data, or raises CtlError
        with the server's message."""
        self.connect()
        self.last_id += 1
        try:
            self.sock.sendall(encode({"id": self.last_id, "command": command,
                                      "args": list(args or [])}))
            answer = read_message(self.sock)
        except (OSError, struct.error) as e:
            self.close()
            raise CtlError("lost the connection: %s" % e)
        except CtlError:
            self.close()
            raise
        if not isinstance(answer, dict):
            raise CtlError("invalid answer: %r" % (answer,))
        if answer.get("status") != "ok":
            raise CtlError(answer.get("error") or "unknown error")
        return answer.get("data") or {}

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()


# -- text output -------------------------------------------------------------

def _beat(w):
    hb = w.get("last_heartbeat")
    return "n/a" if hb is None else "%ss ago" % hb


def _table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else \
        [len(h) for h in header]
    lines = ["  ".join(str(x).ljust(n) for x, n in zip(r, widths)).rstrip()
             for r in [header] + rows]
    lines.insert(1, "-" * len(lines[0]))
    return lines


def _workers(workers):
    rows = [[w.get("pid"), w.get("age"), "yes" if w.get("booted") else "no", _beat(w)]
            for w in workers]
    return _table(["PID", "AGE", "BOOTED", "LAST_BEAT"], rows)


def show_workers(d):
    if not d.get("workers"):
        return "No workers running"
    return "\n".join(_workers(d["workers"]) + ["", "Total: %s workers" % d.get("count")])


def show_all(d):
    out = ["ARBITER (master)", "  PID: %s" % (d.get("arbiter") or {}).get("pid"), ""]
    out.append("WEB WORKERS (%s)" % d.get("web_worker_count", 0))
    web = d.get("web_workers") or []
    out += ["  " + line for line in _workers(web)] if web else ["  (none)"]
    out += ["", "DIRTY ARBITER"]
    dirty = d.get("dirty_arbiter")
    out.append("  PID: %s" % dirty.get("pid") if dirty else "  (not running)")
    return "\n".join(out)


def show_dirty(d):
    if not d.get("enabled"):
        return "Dirty arbiter not running"
    return json.dumps(d, indent=2)


def _duration(seconds):
    if seconds is None:
        return "unknown"
    s = int(seconds)
    h, m, s = s // 3600, s % 3600 // 60, s % 60
    return "%dh %dm %ds" % (h, m, s) if h else "%dm %ds" % (m, s) if m else "%ds" % s


def show_stats(d):
    rows = [("Uptime", _duration(d.get("uptime"))), ("PID", d.get("pid")),
            ("Workers current", d.get("workers_current")),
            ("Workers target", d.get("workers_target")),
            ("Workers spawned", d.get("workers_spawned")),
            ("Workers killed", d.get("workers_killed")), ("Reloads", d.get("reloads"))]
    if d.get("dirty_arbiter_pid"):
        rows.append(("Dirty arbiter", d["dirty_arbiter_pid"]))
    return "\n".join("%-17s %s" % (k + ":", v) for k, v in rows)


def show_listeners(d):
    ls = d.get("listeners") or []
    if not ls:
        return "No listeners bound"
    rows = [[x.get("address"), x.get("type"), x.get("fd")] for x in ls]
    return "\n".join(_table(["ADDRESS", "TYPE", "FD"], rows)
                     + ["", "Total: %s listeners" % d.get("count")])


def show_config(d):
    return "\n".join("%s: %s" % (k, ", ".join(map(str, v)) if isinstance(v, list) else v)
                     for k, v in sorted(d.items()))


def show_help(d):
    cmds = d.get("commands") or {}
    width = max(map(len, cmds), default=0)
    return "\n".join(["Available commands:", ""]
                     + ["  %s  %s" % (c.ljust(width), t) for c, t in sorted(cmds.items())])


FORMATS = {
    ("show", "all"): show_all, ("show", "workers"): show_workers,
    ("show", "dirty"): show_dirty, ("show", "stats"): show_stats,
    ("show", "listeners"): show_listeners, ("show", "config"): show_config,
    ("help",): show_help,
}


def render(line, data, as_json=False):
    """The text to print for the answer to `line`."""
    if as_json:
        return json.dumps(data, indent=2)
    try:
        words = tuple(w.lower() for w in shlex.split(line))
    except ValueError:
        words = ()
    fmt = FORMATS.get(words[:2]) or FORMATS.get(words[:1])
    if fmt is not None:
        return fmt(data)
    return json.dumps(data, indent=2) if data else "OK"


# -- the command -------------------------------------------------------------

def run_one(path, line, as_json=False, out=sys.stdout, err=sys.stderr):
    try:
        with Client(path) as c:
            data = c.request(line)
    except CtlError as e:
        print("Error: %s" % e, file=err)
        return 1
    print(render(line, data, as_json), file=out)
    return 0


def run_interactive(path, as_json=False):
    client = Client(path)
    try:
        client.connect()
    except CtlError as e:
        print("Error: %s" % e, file=sys.stderr)
        return 1
    try:
        import readline
    except ImportError:
        readline = None
    history = os.path.expanduser("~/.cgunicornc_history")
    if readline is not None:
        try:
            readline.read_history_file(history)
        except OSError:
            pass
    print("Connected to %s\nType 'help' for the commands, 'quit' to leave.\n" % path)
    status = 0
    try:
        while True:
            try:
                line = input("cgunicorn> ").strip()
            except EOFError:
                print()
                break
            if not line:
                continue
            if line.lower() in ("quit", "exit", "q"):
                break
            try:
                print(render(line, client.request(line), as_json))
            except CtlError as e:
                print("Error: %s" % e)
                if client.sock is None:  # the connection is gone: try once more
                    try:
                        client.connect()
                    except CtlError:
                        print("Connection lost.")
                        status = 1
                        break
            print()
    except KeyboardInterrupt:
        print()
        status = 130
    finally:
        client.close()
        if readline is not None:
            try:
                readline.write_history_file(history)
            except OSError:
                pass
    return status


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="cgunicornc",
        description="Control a running cgunicorn (or Gunicorn 25.1+) master through its "
                    "control socket.",
        epilog="Commands: show all|workers|stats|config|listeners|dirty, worker add [N], "
               "worker remove [N], worker kill PID, reload, reopen, "
               "shutdown [graceful|quick], help.")
    p.add_argument("-s", "--socket", default=None,
                   help="control socket (default: $XDG_RUNTIME_DIR/gunicorn.ctl, else "
                        "~/.gunicorn/gunicorn.ctl)")
    p.add_argument("-c", "--command", help="run this command and exit (as gunicornc -c)")
    p.add_argument("-j", "--json", action="store_true", help="print the answer's data as JSON")
    p.add_argument("words", nargs=argparse.REMAINDER,
                   help="a command to run and exit (none: interactive)")
    a = p.parse_args(argv)
    path = a.socket or default_socket()
    if not os.path.isabs(path):
        path = os.path.join(os.getcwd(), path)
    line = a.command if a.command is not None else (shlex.join(a.words) if a.words else None)
    if line is None:
        return run_interactive(path, a.json)
    return run_one(path, line, a.json)


if __name__ == "__main__":
    sys.exit(main())
