#!/usr/bin/env bash
# bench/balance.sh - how evenly the workers share the load: $WORKERS workers of one server,
# wrk -t$THREADS_WRK -c$CONNS for $DURATION s, keep-alive and then "Connection: close";
# each worker's share of the requests (bench/balance_app.py counts them per process, to
# within 32) and the server's CPU time per request (us, master and workers, from /proc)
# printed for cgunicorn (sync, gthread, asgi, gevent) and Gunicorn (same workers,
# and Uvicorn's worker class as gu-uvicorn; taken from $GUNICORN, default the bench-venv's,
# `make bench-venv`). Also prints requests/s. `make bench-balance` runs it.
# The asgi servers run balance_app:asgi_app with the bench-venv's site-packages on the path
# (uvloop: cg-asgi picks it, cg-asgi-asyncio is asyncio's own loop); the gevent ones take
# gevent from $GEVENT_SITE.
#
# Environment: CGUNICORN (build/cgunicorn), GUNICORN (build/bench-venv/bin/gunicorn, skipped
# when missing), GEVENT_SITE (build/test-site), WORKERS (4), CONNS (64), THREADS_WRK (2),
# DURATION (10), ROUNDS (1), MODES ("keepalive close"), SERVERS ("cg-gthread cg-sync cg-asgi
# cg-asgi-asyncio cg-gevent gu-gthread gu-sync gu-asgi gu-uvicorn gu-gevent").
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
CGUNICORN=${CGUNICORN:-$HERE/../build/cgunicorn}
GUNICORN=${GUNICORN:-$HERE/../build/bench-venv/bin/gunicorn}
WORKERS=${WORKERS:-4}
CONNS=${CONNS:-64}
THREADS_WRK=${THREADS_WRK:-2}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-1}
SERVERS=${SERVERS:-cg-gthread cg-sync cg-asgi cg-asgi-asyncio cg-gevent gu-gthread gu-sync gu-asgi gu-uvicorn gu-gevent}
GEVENT_SITE=${GEVENT_SITE:-$HERE/../build/test-site}
BENCH_SITE=$(ls -d "$(dirname "$(dirname "$GUNICORN")")"/lib/python3*/site-packages 2>/dev/null | head -n 1)
MODES=${MODES:-keepalive close}
PY=/usr/bin/python3
LIB=("$PY" "$HERE/benchlib.py")

# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

WORK=$(mktemp -d /tmp/cg-bench-balance.XXXXXX)
SPID=
cleanup() {
    stop_server "$SPID"
    rm -rf "$WORK"
}
trap cleanup EXIT
PACKAGING=
if pkg=$("$PY" -c 'import os, packaging; print(os.path.dirname(packaging.__file__))' 2>/dev/null); then
    mkdir -p "$WORK/packaging" && ln -s "$pkg" "$WORK/packaging/packaging" && PACKAGING=$WORK/packaging
fi
trap 'exit 130' INT TERM

command -v wrk >/dev/null || { say "bench: wrk is required"; exit 1; }

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# until $WORKERS different workers have answered the probe: a load started while
# some still import the app lands on the others (with keep-alive, for good)
wait_workers() {
    local port=$1 i pid seen=" "
    for i in $(seq 600); do
        pid=$(curl -s "http://127.0.0.1:$port/probe")
        [ -n "$pid" ] && case $seen in *" $pid "*) ;; *) seen="$seen$pid " ;; esac
        [ "$(echo $seen | wc -w)" -ge "$WORKERS" ] && return 0
        kill -0 "$SPID" 2>/dev/null || return 1
        [ -n "$pid" ] || sleep 0.1
    done
    return 1
}

start_server() {
    local name=$1 port=$2 kind app=balance_app:app site=
    kind=${name#*-}
    case $kind in
    asgi*|uvicorn) app=balance_app:asgi_app; site=$BENCH_SITE
                   [ -n "$site" ] || return 2 ;;
    gevent) site=$GEVENT_SITE; [ -d "$site/gevent" ] || return 2
            # Gunicorn's gevent worker imports packaging, which the bench-venv lacks
            [ -n "$PACKAGING" ] && site=$site:$PACKAGING ;;
    esac
    local args=(-b "127.0.0.1:$port" --chdir "$HERE" --log-level warning -w "$WORKERS")
    case $kind in
    gthread) args+=(-k gthread --threads 4) ;;
    asgi-asyncio) args+=(-k asgi --asgi-loop asyncio) ;;
    uvicorn) args+=(-k uvicorn.workers.UvicornWorker) ;;
    *) args+=(-k "$kind") ;;
    esac
    case $name in
    cg-*) XDG_RUNTIME_DIR=$WORK BALANCE_DIR=$WORK/counts PYTHONPATH=$site "$CGUNICORN" "${args[@]}" \
              "$app" >"$WORK/$name.log" 2>&1 & ;;
    gu-*) [ -x "$GUNICORN" ] || return 2
          XDG_RUNTIME_DIR=$WORK BALANCE_DIR=$WORK/counts PYTHONPATH=$site "$GUNICORN" "${args[@]}" \
              "$app" >"$WORK/$name.log" 2>&1 & ;;
    esac
    SPID=$!
}

# the per-worker shares, largest first, and the verdict for the 20-30% band
report() {
    "$PY" - "$WORK/counts" "$@" <<'PYEOF'
import os, sys
d, name, mode, rps, ticks, nreq = sys.argv[1:7]
rows = sorted((tuple(int(x) for x in open(os.path.join(d, f)).read().split())
               for f in os.listdir(d)), reverse=True)
counts = [r[0] for r in rows]
total = sum(counts) or 1
shares = [100.0 * c / total for c in counts]
# the server's CPU (master and workers, user + system) per request: less
# sensitive to the other jobs on the machine than requests/s
cpu = "%6.1f" % (int(ticks) * 1e6 / os.sysconf("SC_CLK_TCK") / int(nreq)) if int(nreq) else "     ?"
# keep-alive: the connections each worker served (wrk's, and the ones it
# reopened after an error), in the same order
conns = "" if mode != "keepalive" else "  conns " + "/".join(str(r[1]) for r in rows)
print("%-15s %-9s %7s req/s %s us/req  workers %d  shares %s  counts %s%s" % (
    name, mode, rps, cpu, len(counts), " ".join("%4.1f%%" % s for s in shares),
    "/".join(str(c) for c in counts), conns))
PYEOF
}

for round in $(seq "$ROUNDS"); do
    for name in $SERVERS; do
        for mode in $MODES; do
            port=$(free_port)
            rm -rf "$WORK/counts"; mkdir -p "$WORK/counts"
            start_server "$name" "$port" || { say "$name: skipped (no $GUNICORN, its site-packages or gevent)"; continue; }
            if ! wait_workers "$port"; then
                say "$name did not start:"; cat "$WORK/$name.log" >&2; stop_server "$SPID"; SPID=
                continue
            fi
            hdr=()
            [ "$mode" = close ] && hdr=(-H "Connection: close")
            t0=$("${LIB[@]}" cpu "$SPID")
            out=$(wrk -t"$THREADS_WRK" -c"$CONNS" -d"${DURATION}s" "${hdr[@]}" "http://127.0.0.1:$port/" 2>&1)
            t1=$("${LIB[@]}" cpu "$SPID")
            rps=$(printf '%s\n' "$out" | awk '/Requests\/sec/ {printf "%d", $2}')
            nreq=$(printf '%s\n' "$out" | awk '/requests in/ {print $1}')
            stop_server "$SPID"; SPID=
            report "$name" "$mode" "${rps:-?}" "$((t1 - t0))" "${nreq:-0}"
        done
    done
done
