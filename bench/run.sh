#!/usr/bin/env bash
# bench/run.sh - the same hello-world WSGI app (bench/hello.py) under cgunicorn, Debian's
# gunicorn (sync worker) and, when installed, uwsgi; then the gthread worker of cgunicorn and of
# Debian's gunicorn with 1 and 4 threads (servers NAME-gthreadN); one worker each, one run.
# Last, when installed, nginx answering `return 200` by itself: no WSGI, no Python, the
# yardstick of what a server costs per request on this machine and kernel.
# ASGI servers (SERVERS=..., as `make bench-asgi` sets them) serve bench/hello_asgi.py:
# cgunicorn-asgi (-k asgi, uvloop), uvicorn (uvloop + httptools), granian-asgi (Granian's ASGI
# interface) and gunicorn-asgi (Gunicorn 27's -k asgi), the peers from BENCH_VENV.
# gevent workers (SERVERS="cgunicorn-gevent gunicorn-gevent", as `make bench-gevent` sets them):
# hello.py on cgunicorn's -k gevent and on Gunicorn 27's (BENCH_VENV), gevent from GEVENT_SITE.
#
# For each server: bind 127.0.0.1 on a free port, server pinned to CPU $SERVER_CPU, wrk pinned
# to CPU $CLIENT_CPU. Two scenarios: "close" (every request sends Connection: close) and
# "keepalive" (wrk -t1 -c$CONNS, persistent connections where the server allows them; the
# gunicorn sync worker closes after each response anyway). Measured: requests/s (wrk), server
# CPU microseconds per request (utime+stime of master and workers over the run, from
# /proc/<pid>/stat, reaped children included) and RSS of master+workers after warm-up.
#
# Environment: CGUNICORN (default /work/main/build/cgunicorn), GUNICORN (/usr/bin/gunicorn),
# BENCH_VENV (a venv with the pinned peers and uvloop: `make bench-venv`),
# GEVENT_SITE (a folder with gevent and greenlet: the test-site, `make test-site`),
# UWSGI (uwsgi on PATH), NGINX (nginx on PATH, else /usr/sbin/nginx), SERVERS (all of the
# above), DURATION (8 s per run),
# WARMUP (2 s), CONNS (50), SERVER_CPU (0), CLIENT_CPU (1), KEEP=1 keeps the work directory.
# A server that is missing or fails to start is skipped with a message.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
CGUNICORN=${CGUNICORN:-/work/main/build/cgunicorn}
GUNICORN=${GUNICORN:-/usr/bin/gunicorn}
UWSGI=${UWSGI:-$(command -v uwsgi || true)}
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
SERVERS=${SERVERS:-"cgunicorn gunicorn uwsgi cgunicorn-gthread1 gunicorn-gthread1 cgunicorn-gthread4 gunicorn-gthread4 nginx"}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-50}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PY=/usr/bin/python3
LIB=("$PY" "$HERE/benchlib.py")
BENCH_VENV=${BENCH_VENV:-$HERE/../build/bench-venv}
# the bench venv's packages (uvloop) for the standalone, which embeds Debian's Python
BENCH_SITE=$(ls -d "$BENCH_VENV"/lib/python3*/site-packages 2>/dev/null | head -n 1)
GEVENT_SITE=${GEVENT_SITE:-$HERE/../build/test-site}

WORK=$(mktemp -d /tmp/cg-bench.XXXXXX)
RESULTS=$WORK/results.tsv
: >"$RESULTS"
SERVER_PID=

# say, stop_server (LIB must be set: the benchlib.py command line)
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cleanup() {
    stop_server "$SERVER_PID"
    if [ "${KEEP:-0}" = 1 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in wrk taskset; do
    command -v "$tool" >/dev/null || { say "bench: $tool is required"; exit 1; }
done
if [ "$(nproc)" -lt 2 ]; then
    say "bench: warning: fewer than 2 CPUs, server and wrk share a CPU"
    CLIENT_CPU=$SERVER_CPU
fi

# start_server NAME PORT: sets SERVER_PID, returns non-zero when not available
start_server() {
    local name=$1 port=$2 cmd=()
    case $name in
    cgunicorn)
        [ -x "$CGUNICORN" ] || { say "skip cgunicorn: $CGUNICORN is not an executable"; return 1; }
        cmd=("$CGUNICORN" -w 1 -b "127.0.0.1:$port" --chdir "$HERE" hello:app)
        ;;
    gunicorn)
        [ -x "$GUNICORN" ] || { say "skip gunicorn: $GUNICORN not found"; return 1; }
        cmd=("$GUNICORN" -w 1 -k sync -b "127.0.0.1:$port" --chdir "$HERE" hello:app)
        ;;
    cgunicorn-gthread[0-9]*)
        [ -x "$CGUNICORN" ] || { say "skip $name: $CGUNICORN is not an executable"; return 1; }
        cmd=("$CGUNICORN" -w 1 -k gthread --threads "${name#cgunicorn-gthread}" -b "127.0.0.1:$port"
            --chdir "$HERE" hello:app)
        ;;
    gunicorn-gthread[0-9]*)
        [ -x "$GUNICORN" ] || { say "skip $name: $GUNICORN not found"; return 1; }
        cmd=("$GUNICORN" -w 1 -k gthread --threads "${name#gunicorn-gthread}" -b "127.0.0.1:$port"
            --chdir "$HERE" hello:app)
        ;;
    uwsgi)
        [ -n "$UWSGI" ] && [ -x "$UWSGI" ] || { say "skip uwsgi: not installed"; return 1; }
        # Debian's uwsgi-core has Python as a plugin, and options are parsed in
        # order: the plugin must be loaded before --wsgi-file means anything.
        cmd=("$UWSGI")
        if [ -e /usr/lib/uwsgi/plugins/python3_plugin.so ]; then
            cmd+=(--plugin python3)
        fi
        cmd+=(--http-socket "127.0.0.1:$port" --wsgi-file "$HERE/hello.py" --callable app
            --master --processes 1 --threads 1 --disable-logging --die-on-term)
        ;;
    cgunicorn-asgi)
        [ -x "$CGUNICORN" ] || { say "skip $name: $CGUNICORN is not an executable"; return 1; }
        [ -n "$BENCH_SITE" ] || { say "skip $name: no $BENCH_VENV (make bench-venv) for uvloop"; return 1; }
        cmd=(env PYTHONPATH="$BENCH_SITE" "$CGUNICORN" -w 1 -k asgi --asgi-loop uvloop
            -b "127.0.0.1:$port" --chdir "$HERE" hello_asgi:app)
        ;;
    uvicorn)
        [ -x "$BENCH_VENV/bin/uvicorn" ] || { say "skip uvicorn: no $BENCH_VENV"; return 1; }
        cmd=("$BENCH_VENV/bin/uvicorn" --workers 1 --loop uvloop --http httptools --no-access-log
            --host 127.0.0.1 --port "$port" --app-dir "$HERE" hello_asgi:app)
        ;;
    granian-asgi)
        [ -x "$BENCH_VENV/bin/granian" ] || { say "skip granian: no $BENCH_VENV"; return 1; }
        cmd=("$BENCH_VENV/bin/granian" --interface asgi --workers 1 --host 127.0.0.1 --port "$port"
            --working-dir "$HERE" hello_asgi:app)
        ;;
    gunicorn-asgi)
        [ -x "$BENCH_VENV/bin/gunicorn" ] || { say "skip gunicorn-asgi: no $BENCH_VENV"; return 1; }
        cmd=("$BENCH_VENV/bin/gunicorn" -w 1 -k asgi -b "127.0.0.1:$port" --chdir "$HERE"
            hello_asgi:app)
        ;;
    cgunicorn-gevent)
        [ -x "$CGUNICORN" ] || { say "skip $name: $CGUNICORN is not an executable"; return 1; }
        [ -d "$GEVENT_SITE/gevent" ] || { say "skip $name: no gevent in $GEVENT_SITE"; return 1; }
        cmd=("$CGUNICORN" -w 1 -k gevent --pythonpath "$GEVENT_SITE" -b "127.0.0.1:$port"
            --chdir "$HERE" hello:app)
        ;;
    gunicorn-gevent)
        [ -x "$BENCH_VENV/bin/gunicorn" ] || { say "skip $name: no $BENCH_VENV"; return 1; }
        [ -d "$GEVENT_SITE/gevent" ] || { say "skip $name: no gevent in $GEVENT_SITE"; return 1; }
        cmd=(env PYTHONPATH="$GEVENT_SITE" "$BENCH_VENV/bin/gunicorn" -w 1 -k gevent
            -b "127.0.0.1:$port" --chdir "$HERE" hello:app)
        ;;
    nginx)
        # Not a WSGI server: nginx answering `return 200` itself, the floor an
        # HTTP server on this machine and kernel can reach (the issue's yardstick).
        [ -n "$NGINX" ] && [ -x "$NGINX" ] || { say "skip nginx: not installed"; return 1; }
        mkdir -p "$WORK/nginx"
        cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx;
    fastcgi_temp_path $WORK/nginx; uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$port;
        location / { default_type text/plain; return 200 "Hello, World!"; }
    }
}
NGINX
        cmd=("$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf")
        ;;
    *)
        say "skip $name: unknown server"
        return 1
        ;;
    esac
    say "== $name: ${cmd[*]}"
    taskset -c "$SERVER_CPU" "${cmd[@]}" >"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null &
    SERVER_PID=$!
    if ! "${LIB[@]}" wait "$port" "$SERVER_PID" 15; then
        say "skip $name: did not answer GET / with Hello, World! on port $port; its stderr ends:"
        tail -n 15 "$WORK/$name.err" | sed 's/^/    /' >&2
        stop_server "$SERVER_PID"
        SERVER_PID=
        return 1
    fi
    return 0
}

run_wrk() { # OUT SECONDS PORT [wrk args...]
    local out=$1 secs=$2 port=$3
    shift 3
    taskset -c "$CLIENT_CPU" wrk --latency -t1 -c"$CONNS" -d"${secs}s" "$@" "http://127.0.0.1:$port/" >"$out" 2>&1
}

for name in $SERVERS; do
    port=$("${LIB[@]}" port)
    start_server "$name" "$port" || continue
    for scen in close keepalive; do
        hdr=()
        [ "$scen" = close ] && hdr=(-H 'Connection: close')
        run_wrk "$WORK/$name-$scen-warm.txt" "$WARMUP" "$port" "${hdr[@]}"
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            say "  $name died during warm-up; skipped"
            break
        fi
        rss=$("${LIB[@]}" rss "$SERVER_PID")
        c0=$("${LIB[@]}" cpu "$SERVER_PID")
        run_wrk "$WORK/$name-$scen.txt" "$DURATION" "$port" "${hdr[@]}"
        c1=$("${LIB[@]}" cpu "$SERVER_PID")
        read -r reqs rps errors < <("${LIB[@]}" wrk "$WORK/$name-$scen.txt")
        say "  $scen: $reqs requests, $rps req/s, $errors errors, $((c1 - c0)) CPU ticks, RSS ${rss} KiB"
        if [ "$reqs" -eq 0 ]; then
            say "  no requests completed; wrk said:"
            sed 's/^/    /' "$WORK/$name-$scen.txt" >&2
        fi
        p99=$("${LIB[@]}" p99 "$WORK/$name-$scen.txt")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$scen" "$reqs" "$rps" \
            "$((c1 - c0))" "$rss" "$errors" "$CONNS" "$p99" >>"$RESULTS"
    done
    stop_server "$SERVER_PID"
    SERVER_PID=
done

if [ ! -s "$RESULTS" ]; then
    say "bench: no server could be measured"
    exit 1
fi
echo
echo "Hello-world app (bench/hello.py, or hello_asgi.py for ASGI servers), 1 worker, server on CPU $SERVER_CPU, wrk -t1 -c$CONNS on CPU $CLIENT_CPU," \
    "${DURATION}s per run after ${WARMUP}s warm-up ($(date -u +%Y-%m-%dT%H:%MZ), $(uname -r))"
echo
"${LIB[@]}" table "$RESULTS"
