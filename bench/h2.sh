#!/usr/bin/env bash
# HTTP/2 over TLS: server CPU per request of one cgunicorn gthread worker
# serving examples/hello.py, beside nginx (http2, `return 200`) on the same
# certificate, TLS 1.3 and cipher (TLS_AES_128_GCM_SHA256, set on h2load's
# side; each run prints what was negotiated), both driven by h2load
# (Debian's nghttp2-client).
#
#   CGUNICORN=build/cgunicorn bash bench/h2.sh
#
# Both servers run side by side, pinned to CPU 0, h2load to CPU 1; after a
# warm-up run of each, ROUNDS rounds alternate cgunicorn and nginx, so load
# from elsewhere on the machine falls on both alike. Server CPU is
# utime+stime (every process of the server, from /proc) over each measured
# run. N, C, M set h2load's -n, -c, -m (200000, 50, 10: the issue's
# `h2load -c 50 -m 10`); THREADS the gthread worker's --threads (1);
# ROUNDS (5); WORKER=asgi serves bench/hello_asgi.py with the asgi worker
# instead (asyncio's loop and SSL transport).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
CGUNICORN=${CGUNICORN:-$root/build/cgunicorn}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
N=${N:-200000}
C=${C:-50}
M=${M:-10}
THREADS=${THREADS:-1}
WORKER=${WORKER:-gthread}
ROUNDS=${ROUNDS:-5}
CIPHER=TLS_AES_128_GCM_SHA256
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

h2() { # port n -> h2load's output
    taskset -c 1 h2load -n "$2" -c "$C" -m "$M" --tls13-ciphers="$CIPHER" "https://127.0.0.1:$1/"
}

measure() { # name pid port -> one line: name us/request req/s cipher
    local name=$1 pid=$2 p=$3 hz t0 t1 out
    hz=$(getconf CLK_TCK)
    t0=$(ticks "$pid")
    out=$(h2 "$p" "$N")
    t1=$(ticks "$pid")
    echo "$out" | grep -q "status codes: $N 2xx" || {
        echo "$name: not every request succeeded:" >&2
        echo "$out" >&2
        return 1
    }
    awk -v n="$N" -v d=$((t1 - t0)) -v hz="$hz" -v name="$name" \
        -v rps="$(echo "$out" | sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p')" \
        -v proto="$(echo "$out" | sed -n 's/^TLS Protocol: //p') $(echo "$out" | sed -n 's/^Cipher: //p')" \
        'BEGIN { printf "%-9s server CPU %6.2f us/request  %8.0f req/s  (%s)\n", name, d * 1e6 / hz / n, rps, proto;
                 printf "%.4f\n", d * 1e6 / hz / n > "/dev/stderr" }'
}

pc=$(port)
if [ "$WORKER" = asgi ]; then
    wargs=(-k asgi --chdir "$root/bench" hello_asgi:app)
else
    wargs=(-k gthread --threads "$THREADS" --chdir "$root/examples" hello:app)
fi
taskset -c 0 "$CGUNICORN" -w 1 -b "127.0.0.1:$pc" \
    --certfile "$WORK/cert.pem" --keyfile "$WORK/key.pem" --http-protocols h2,h1 \
    --log-level warning "${wargs[@]}" &
echo $! >"$WORK/cg.pid"
wait_port "$pc"

pn=
if [ -x "$NGINX" ]; then
    pn=$(port)
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
        listen 127.0.0.1:$pn ssl http2;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / { return 200 "Hello, World!\n"; }
    }
}
NGINX
    taskset -c 0 "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" &
    echo $! >"$WORK/nginx.pid"
    wait_port "$pn"
fi

h2 "$pc" $((N / 10)) >/dev/null
[ -z "$pn" ] || h2 "$pn" $((N / 10)) >/dev/null
echo "h2load -n $N -c $C -m $M, $ROUNDS rounds, cgunicorn -k $WORKER (gthread: --threads $THREADS)"
for r in $(seq "$ROUNDS"); do
    measure cgunicorn "$(cat "$WORK/cg.pid")" "$pc" 2>>"$WORK/cg.us"
    [ -z "$pn" ] || measure nginx "$(cat "$WORK/nginx.pid")" "$pn" 2>>"$WORK/nginx.us"
done
if [ -n "$pn" ]; then
    # the ratio of the medians, and the range of the per-round ratios
    paste "$WORK/cg.us" "$WORK/nginx.us" | awk '
        { c[NR] = $1; n[NR] = $2; r[NR] = $1 / $2 }
        function median(a, k,   i, j, t) {
            for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
        }
        END { mc = median(c, NR); mn = median(n, NR); lo = hi = r[1]
              for (i = 2; i <= NR; i++) { if (r[i] < lo) lo = r[i]; if (r[i] > hi) hi = r[i] }
              printf "median: cgunicorn %.2f, nginx %.2f us/request; cgunicorn/nginx %.2f (rounds %.2f-%.2f)\n", mc, mn, mc / mn, lo, hi }'
fi
