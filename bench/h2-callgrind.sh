#!/usr/bin/env bash
# bench/h2-callgrind.sh - the instruction counts behind bench/h2.sh, free of the machine's load:
# cgunicorn (one gthread worker, --threads 1, examples/hello.py, --http-protocols h2,h1) and
# nginx (one worker, `listen ... ssl http2`, `return 200`), each under
# `valgrind --tool=callgrind --trace-children=yes`, same trustme RSA 2048 certificate, TLS 1.3
# with TLS_AES_128_GCM_SHA256 (set on h2load's side). Each server is run twice, serving
# `h2load -c C -m M` with N1 and then N2 requests; (Ir(N2) - Ir(N1)) / (N2 - N1) over all the
# server's processes is the user-space instructions per request, start-up, the C handshakes
# and shutdown cancelled out. Kernel work (syscalls, TCP) is not counted by callgrind.
# `make bench-h2-callgrind` runs it (a few minutes).
#
# Environment: CGUNICORN (default build/cgunicorn), NGINX, N1 (500), N2 (5500), C (50), M (10).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CGUNICORN=${CGUNICORN:-$ROOT/build/cgunicorn}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
N1=${N1:-500}
N2=${N2:-5500}
C=${C:-50}
M=${M:-10}
PY=${PYTHON:-/usr/bin/python3}
WORK=$(mktemp -d /tmp/cg-bench-h2cg.XXXXXX)
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"' EXIT
for tool in valgrind h2load curl "$NGINX"; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
"$PY" - "$WORK" <<'PYEOF' || exit 1
import sys, trustme
ca = trustme.CA()
c = ca.issue_cert("localhost", "127.0.0.1")
c.cert_chain_pems[0].write_to_path(sys.argv[1] + "/cert.pem")
c.private_key_pem.write_to_path(sys.argv[1] + "/key.pem")
PYEOF

run() { # server n -> total Ir
    local srv=$1 n=$2 d port pid f v tot=0 i out
    d=$WORK/$srv-$n
    mkdir -p "$d"
    # nginx's worker runs as nobody when started by root: it writes its profile here
    chmod 755 "$WORK"
    chmod 1777 "$d"
    port=$("$PY" "$HERE/benchlib.py" port)
    if [ "$srv" = cgunicorn ]; then
        valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$d/cg.%p" -q \
            "$CGUNICORN" -k gthread --threads 1 -w 1 -b "127.0.0.1:$port" \
            --certfile "$WORK/cert.pem" --keyfile "$WORK/key.pem" --http-protocols h2,h1 \
            --chdir "$ROOT/examples" --log-level warning --timeout 300 --keep-alive 60 \
            hello:app >"$d/log" 2>&1 &
    else
        cat >"$d/nginx.conf" <<NGINXCONF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path $d; proxy_temp_path $d;
    fastcgi_temp_path $d; uwsgi_temp_path $d; scgi_temp_path $d;
    server {
        listen 127.0.0.1:$port ssl http2;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / { return 200 "Hello, World!\n"; }
    }
}
NGINXCONF
        valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$d/cg.%p" -q \
            "$NGINX" -p "$d" -c "$d/nginx.conf" >"$d/log" 2>&1 &
    fi
    pid=$!
    for i in $(seq 600); do
        curl -sk -o /dev/null "https://127.0.0.1:$port/" && break
        sleep 0.2
    done
    out=$(h2load -n "$n" -c "$C" -m "$M" --tls13-ciphers=TLS_AES_128_GCM_SHA256 \
        "https://127.0.0.1:$port/")
    echo "$out" | grep -q "status codes: $n 2xx" || { echo "$srv: h2load failed: $out" >&2; }
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null
    for f in "$d"/cg.*; do
        v=$(grep -E "^(summary|totals):" "$f" | head -1 | awk '{print $2}')
        tot=$((tot + ${v:-0}))
    done
    echo "$tot"
}

declare -A PER
for srv in cgunicorn nginx; do
    a=$(run "$srv" "$N1")
    b=$(run "$srv" "$N2")
    PER[$srv]=$(( (b - a) / (N2 - N1) ))
    printf '%-9s %12d instructions/request (Ir %d for %d, %d for %d)\n' \
        "$srv" "${PER[$srv]}" "$a" "$N1" "$b" "$N2"
done
awk -v c="${PER[cgunicorn]}" -v n="${PER[nginx]}" -v cc="$C" -v m="$M" \
    'BEGIN { printf "h2load -c %d -m %d: cgunicorn/nginx instructions per request: %.3f\n", cc, m, c / n }'
