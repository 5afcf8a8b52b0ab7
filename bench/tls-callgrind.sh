#!/usr/bin/env bash
# bench/tls-callgrind.sh - the instruction counts behind bench/tls.sh, free of the machine's load:
# cgunicorn (one gthread worker, --threads 1, examples/hello.py) and nginx (one worker,
# `return 200`), each under `valgrind --tool=callgrind --trace-children=yes`, same trustme RSA
# 2048 certificate, TLS 1.2-1.3 (TLS 1.3 negotiated with curl). Each server is run twice per
# scenario, serving N1 and then N2 requests with curl; (Ir(N2) - Ir(N1)) / (N2 - N1) over all
# the server's processes is the user-space instructions per request, start-up and shutdown
# cancelled out. Scenarios: keepalive (one curl, N URLs on one connection) and newconn (one curl
# per request: TCP connection and full handshake each). Kernel work (syscalls, TCP) is not
# counted by callgrind. `make bench-tls-callgrind` runs it (a few minutes).
#
# Environment: CGUNICORN (default build/cgunicorn), NGINX, N1 (20), N2 (220).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CGUNICORN=${CGUNICORN:-$ROOT/build/cgunicorn}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
N1=${N1:-20}
N2=${N2:-220}
PY=${PYTHON:-/usr/bin/python3}
WORK=$(mktemp -d /tmp/cg-bench-tlscg.XXXXXX)
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"' EXIT
for tool in valgrind curl "$NGINX"; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done
"$PY" - "$WORK" <<'PYEOF' || exit 1
import sys, trustme
ca = trustme.CA()
c = ca.issue_cert("localhost", "127.0.0.1")
c.cert_chain_pems[0].write_to_path(sys.argv[1] + "/cert.pem")
c.private_key_pem.write_to_path(sys.argv[1] + "/key.pem")
PYEOF

run() { # server scenario n -> total Ir
    local srv=$1 scen=$2 n=$3 d port pid f v tot=0 i
    d=$WORK/$srv-$scen-$n
    mkdir -p "$d"
    # nginx's worker runs as nobody when started by root: it writes its profile here
    chmod 755 "$WORK"
    chmod 1777 "$d"
    port=$("$PY" "$HERE/benchlib.py" port)
    if [ "$srv" = cgunicorn ]; then
        valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$d/cg.%p" -q \
            "$CGUNICORN" -k gthread --threads 1 -w 1 -b "127.0.0.1:$port" \
            --certfile "$WORK/cert.pem" --keyfile "$WORK/key.pem" --chdir "$ROOT/examples" \
            --log-level warning --timeout 300 --keep-alive 60 hello:app >"$d/log" 2>&1 &
    else
        cat >"$d/nginx.conf" <<NGINXCONF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_requests 100000;
    client_body_temp_path $d; proxy_temp_path $d;
    fastcgi_temp_path $d; uwsgi_temp_path $d; scgi_temp_path $d;
    server {
        listen 127.0.0.1:$port ssl;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
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
    local urls=()
    for i in $(seq "$n"); do urls+=("https://127.0.0.1:$port/"); done
    if [ "$scen" = keepalive ]; then
        curl -sk "${urls[@]}" >/dev/null
    else
        for i in "${urls[@]}"; do curl -sk "$i" >/dev/null; done
    fi
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null
    for f in "$d"/cg.*; do
        v=$(grep -E "^(summary|totals):" "$f" | head -1 | awk '{print $2}')
        tot=$((tot + ${v:-0}))
    done
    echo "$tot"
}

declare -A PER
for scen in keepalive newconn; do
    for srv in cgunicorn nginx; do
        a=$(run "$srv" "$scen" "$N1")
        b=$(run "$srv" "$scen" "$N2")
        PER[$srv,$scen]=$(( (b - a) / (N2 - N1) ))
        printf '%-9s %-9s %12d instructions/request (Ir %d for %d, %d for %d)\n' \
            "$srv" "$scen" "${PER[$srv,$scen]}" "$a" "$N1" "$b" "$N2"
    done
    awk -v c="${PER[cgunicorn,$scen]}" -v n="${PER[nginx,$scen]}" -v s="$scen" \
        'BEGIN { printf "%-9s cgunicorn/nginx instructions per request: %.3f\n", s, c / n }'
done
