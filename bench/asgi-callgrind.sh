#!/usr/bin/env bash
# bench/asgi-callgrind.sh - user-space instructions per request of the asgi worker (uvloop,
# bench/hello_asgi.py, one worker) for keep-alive and Connection: close, free of the machine's
# load: the server runs under `valgrind --tool=callgrind --trace-children=yes` twice per
# scenario, serving N1 and then N2 requests from bench/asgi_load.py (C at a time), and
# (Ir(N2) - Ir(N1)) / (N2 - N1) of the worker process is the figure, start-up and shutdown
# cancelled out. With SERVER=uvicorn, Uvicorn (uvloop + httptools) from BENCH_VENV instead.
# Kernel work (system calls, TCP) is not counted.
#
# Environment: CGUNICORN (default build/cgunicorn), BENCH_VENV (build/bench-venv: uvloop, and
# Uvicorn for SERVER=uvicorn), N1 (500), N2 (5500), C (10), MODES ("close keepalive").
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
CGUNICORN=${CGUNICORN:-$ROOT/build/cgunicorn}
BENCH_VENV=${BENCH_VENV:-$ROOT/build/bench-venv}
SITE=$(ls -d "$BENCH_VENV"/lib/python3*/site-packages 2>/dev/null | head -n 1)
SERVER=${SERVER:-cgunicorn}
N1=${N1:-500}
N2=${N2:-5500}
C=${C:-10}
MODES=${MODES:-"close keepalive"}
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/cg-bench-asgicg.XXXXXX)
trap '[ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"' EXIT
command -v valgrind >/dev/null || { echo "bench: valgrind is required" >&2; exit 1; }
[ -n "$SITE" ] || { echo "bench: no $BENCH_VENV (make bench-venv) for uvloop" >&2; exit 1; }

run() { # mode n -> the worker's total Ir
    local mode=$1 n=$2 d port pid i f best=0 v
    d=$WORK/$mode-$n
    mkdir -p "$d/xdg"
    port=$("$PY" "$HERE/benchlib.py" port)
    if [ "$SERVER" = uvicorn ]; then
        valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$d/cg.%p" -q \
            "$BENCH_VENV/bin/python" -m uvicorn --loop uvloop --http httptools --no-access-log \
            --log-level warning --host 127.0.0.1 --port "$port" --timeout-keep-alive 60 \
            --app-dir "$HERE" hello_asgi:app >"$d/log" 2>&1 &
    else
        XDG_RUNTIME_DIR=$d/xdg PYTHONPATH=$SITE \
            valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$d/cg.%p" -q \
            "$CGUNICORN" -w 1 -k asgi --asgi-loop uvloop -b "127.0.0.1:$port" --chdir "$HERE" \
            --timeout 300 --keep-alive 60 --log-level warning hello_asgi:app >"$d/log" 2>&1 &
    fi
    pid=$!
    for i in $(seq 600); do
        "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $port)).close()" \
            2>/dev/null && break
        sleep 0.2
    done
    "$PY" "$HERE/asgi_load.py" "$mode" "$port" "$n" "$C" || echo "bench: load failed" >&2
    kill -TERM "$pid"
    wait "$pid"
    # the worker: the process with the most instructions (Uvicorn: its only one)
    for f in "$d"/cg.*; do
        v=$(grep -m1 -E '^(summary|totals):' "$f" | awk '{print $2}')
        [ "${v:-0}" -gt "$best" ] && best=$v
    done
    echo "$best"
}

for mode in $MODES; do
    a=$(run "$mode" "$N1")
    b=$(run "$mode" "$N2")
    echo "$SERVER $mode: $(( (b - a) / (N2 - N1) )) instructions per request ($N1: $a, $N2: $b)"
done
