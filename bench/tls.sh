#!/usr/bin/env bash
# bench/tls.sh - what HTTPS costs the server: hello world (examples/hello.py) on one cgunicorn
# gthread worker (--threads $THREADS), beside nginx (one worker, `return 200`), both with the
# same certificate (trustme's RSA 2048), the same protocols (TLS 1.2 and 1.3: both negotiate
# TLS 1.3 with wrk) and OpenSSL's default cipher suites. Two scenarios, each with wrk:
#   keepalive  wrk -t1 -c$CONNS: one handshake per connection, then requests on it
#   newconn    the same with "Connection: close": a TCP connection and a full TLS handshake
#              (no session resumption: wrk does not offer one) for every request
# Servers pinned to CPU $SERVER_CPU, wrk to CPU $CLIENT_CPU. After a warm-up, $ROUNDS rounds
# run every (server, scenario) back to back, so the machine's drift touches all alike. Measured:
# server CPU microseconds per request (utime+stime of every process of the server, from
# /proc/<pid>/stat, over each run, divided by wrk's request count); printed per run, then the
# median per (server, scenario) and the ratio cgunicorn/nginx. `make bench-tls` runs it.
#
# Environment: CGUNICORN (default build/cgunicorn), NGINX, THREADS (1), DURATION (5 s per run),
# WARMUP (2 s), ROUNDS (3), CONNS (50 keep-alive; newconn uses CONNS_NEW, 10), SERVER_CPU (0),
# CLIENT_CPU (1).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CGUNICORN=${CGUNICORN:-$ROOT/build/cgunicorn}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
THREADS=${THREADS:-1}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
CONNS_NEW=${CONNS_NEW:-10}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PY=${PYTHON:-/usr/bin/python3}
LIB=("$PY" "$HERE/benchlib.py")
WORK=$(mktemp -d /tmp/cg-bench-tls.XXXXXX)
RESULTS=$WORK/results.tsv
: >"$RESULTS"
declare -A PID PORT

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

cleanup() {
    stop_server "${PID[cgunicorn]:-}"
    stop_server "${PID[nginx]:-}"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in wrk taskset "$NGINX"; do
    command -v "$tool" >/dev/null || { say "bench: $tool is required"; exit 1; }
done

"$PY" - "$WORK" <<'PYEOF' || exit 1
import sys, trustme
ca = trustme.CA()
c = ca.issue_cert("localhost", "127.0.0.1")
c.cert_chain_pems[0].write_to_path(sys.argv[1] + "/cert.pem")
c.private_key_pem.write_to_path(sys.argv[1] + "/key.pem")
PYEOF

port() { "${LIB[@]}" port; }

wait_tls() { # port
    local i
    for i in $(seq 100); do
        curl -sk -o /dev/null "https://127.0.0.1:$1/" && return 0
        sleep 0.1
    done
    say "server on port $1 did not come up"
    return 1
}

PORT[cgunicorn]=$(port)
taskset -c "$SERVER_CPU" "$CGUNICORN" -k gthread --threads "$THREADS" -w 1 \
    -b "127.0.0.1:${PORT[cgunicorn]}" --certfile "$WORK/cert.pem" --keyfile "$WORK/key.pem" \
    --chdir "$ROOT/examples" --log-level warning --keep-alive 60 hello:app \
    >"$WORK/cg.log" 2>&1 &
PID[cgunicorn]=$!

PORT[nginx]=$(port)
cat >"$WORK/nginx.conf" <<NGINXCONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    client_body_temp_path $WORK; proxy_temp_path $WORK;
    fastcgi_temp_path $WORK; uwsgi_temp_path $WORK; scgi_temp_path $WORK;
    server {
        listen 127.0.0.1:${PORT[nginx]} ssl;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets on;
        location / { return 200 "Hello, World!\n"; }
    }
}
NGINXCONF
taskset -c "$SERVER_CPU" "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" >"$WORK/nginx.out" 2>&1 &
PID[nginx]=$!

wait_tls "${PORT[cgunicorn]}" || { cat "$WORK/cg.log" >&2; exit 1; }
wait_tls "${PORT[nginx]}" || { cat "$WORK/nginx-error.log" >&2; exit 1; }

run_wrk() { # server scenario seconds -> wrk output file
    local s=$1 scen=$2 d=$3 out=$WORK/wrk.out
    if [ "$scen" = keepalive ]; then
        taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${d}s" "https://127.0.0.1:${PORT[$s]}/" \
            >"$out" 2>&1
    else
        taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS_NEW" -d"${d}s" -H "Connection: close" \
            "https://127.0.0.1:${PORT[$s]}/" >"$out" 2>&1
    fi
    echo "$out"
}

for s in cgunicorn nginx; do
    for scen in keepalive newconn; do run_wrk "$s" "$scen" "$WARMUP" >/dev/null; done
done

HZ=$(getconf CLK_TCK)
for r in $(seq "$ROUNDS"); do
    for scen in keepalive newconn; do
        order="cgunicorn nginx"
        [ $((r % 2)) = 0 ] && order="nginx cgunicorn"
        for s in $order; do
            t0=$("${LIB[@]}" cpu "${PID[$s]}")
            out=$(run_wrk "$s" "$scen" "$DURATION")
            t1=$("${LIB[@]}" cpu "${PID[$s]}")
            n=$(awk '/requests in/ { print $1 }' "$out")
            errs=$(awk '/Socket errors|Non-2xx/ { print }' "$out" | tr '\n' ' ')
            if [ -z "$n" ] || [ "$n" = 0 ]; then
                say "round $r $s $scen: no requests"; cat "$out" >&2; continue
            fi
            us=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.2f", d * 1e6 / hz / n }')
            printf '%s\t%s\t%s\t%s\n' "$s" "$scen" "$us" "$n" >>"$RESULTS"
            say "round $r $(printf '%-9s %-9s' "$s" "$scen") $n requests, server CPU $us us/request $errs"
        done
    done
done

"$PY" - "$RESULTS" <<'PYEOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
med = {}
for scen in ("keepalive", "newconn"):
    for s in ("cgunicorn", "nginx"):
        v = [float(r[2]) for r in rows if r[0] == s and r[1] == scen]
        if v:
            med[s, scen] = statistics.median(v)
            print("%-9s %-9s median %8.2f us/request (runs: %s)"
                  % (s, scen, med[s, scen], " ".join("%.2f" % x for x in v)))
for scen in ("keepalive", "newconn"):
    if ("cgunicorn", scen) in med and ("nginx", scen) in med:
        print("%-9s cgunicorn/nginx server CPU per request: %.2f"
              % (scen, med["cgunicorn", scen] / med["nginx", scen]))
PYEOF
