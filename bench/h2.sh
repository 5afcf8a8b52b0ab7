#!/usr/bin/env bash
# HTTP/2 over TLS: server CPU per request of one cgunicorn gthread worker
# serving examples/hello.py, beside nginx (http2, `return 200`) on the same
# certificate, both driven by h2load (Debian's nghttp2-client).
#
#   CGUNICORN=build/cgunicorn bash bench/h2.sh
#
# The server is pinned to CPU 0, h2load to CPU 1. Server CPU is utime+stime
# (every process of the server, from /proc) over the measured run, after a
# warm-up run. N, C, M set h2load's -n, -c, -m (200000, 10, 10); THREADS the
# gthread worker's --threads (1); WORKER=asgi serves bench/hello_asgi.py with
# the asgi worker instead (asyncio's loop and SSL transport).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
CGUNICORN=${CGUNICORN:-$root/build/cgunicorn}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
N=${N:-200000}
C=${C:-10}
M=${M:-10}
THREADS=${THREADS:-1}
WORKER=${WORKER:-gthread}
PY=${PYTHON:-/usr/bin/python3}
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$PY" - "$WORK" <<'EOF'
import sys, trustme
ca = trustme.CA()
c = ca.issue_cert("localhost", "127.0.0.1")
c.cert_chain_pems[0].write_to_path(sys.argv[1] + "/cert.pem")
c.private_key_pem.write_to_path(sys.argv[1] + "/key.pem")
EOF

port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# clock ticks of a process and its descendants
ticks() {
    local total=0 p
    for p in $1 $(pgrep -P "$1" 2>/dev/null || true); do
        [ -r /proc/$p/stat ] || continue
        set -- $(sed 's/.*) //' /proc/$p/stat)
        total=$((total + ${12} + ${13}))
    done
    echo $total
}

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "server on port $1 did not come up" >&2
    return 1
}

measure() { # name pid port
    local name=$1 pid=$2 p=$3 hz t0 t1 out
    hz=$(getconf CLK_TCK)
    taskset -c 1 h2load -n $((N / 10)) -c "$C" -m "$M" "https://127.0.0.1:$p/" >/dev/null
    t0=$(ticks "$pid")
    out=$(taskset -c 1 h2load -n "$N" -c "$C" -m "$M" "https://127.0.0.1:$p/")
    t1=$(ticks "$pid")
    echo "$out" | grep -E "^finished|^requests|^status codes" | sed "s/^/$name: /"
    awk -v n="$N" -v d=$((t1 - t0)) -v hz="$hz" -v name="$name" \
        'BEGIN { printf "%s: server CPU %.2f us/request (%d ticks)\n", name, d * 1e6 / hz / n, d }'
}

p=$(port)
if [ "$WORKER" = asgi ]; then
    wargs=(-k asgi --chdir "$root/bench" hello_asgi:app)
else
    wargs=(-k gthread --threads "$THREADS" --chdir "$root/examples" hello:app)
fi
taskset -c 0 "$CGUNICORN" -w 1 -b "127.0.0.1:$p" \
    --certfile "$WORK/cert.pem" --keyfile "$WORK/key.pem" --http-protocols h2,h1 \
    --log-level warning "${wargs[@]}" &
echo $! >"$WORK/cg.pid"
wait_port "$p"
measure cgunicorn "$(cat "$WORK/cg.pid")" "$p"
kill "$(cat "$WORK/cg.pid")"

if [ -x "$NGINX" ]; then
    p=$(port)
    cat >"$WORK/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx.pid.file;
error_log $WORK/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 100000000;  # nginx ends a connection after 1000 by default
    client_body_temp_path $WORK; proxy_temp_path $WORK;
    fastcgi_temp_path $WORK; uwsgi_temp_path $WORK; scgi_temp_path $WORK;
    server {
        listen 127.0.0.1:$p ssl http2;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        location / { return 200 "Hello, World!\n"; }
    }
}
NGINX
    taskset -c 0 "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" &
    echo $! >"$WORK/nginx.pid"
    wait_port "$p"
    measure nginx "$(cat "$WORK/nginx.pid")" "$p"
fi
