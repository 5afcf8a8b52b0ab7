#!/usr/bin/env bash
# bench/frontends.sh - the two front ends of the same C core on the same app (examples/hello.py),
# sync worker, one worker each: the standalone executable (its master is C, Python lives only in
# the worker) and the pip-installed console script (`cgunicorn` of a venv: its master is a Python
# process and the worker is forked from it). `make bench-frontends` builds both.
#
# Both servers run at the same time, pinned to CPU $SERVER_CPU (the idle one costs nothing
# measurable), wrk pinned to CPU $CLIENT_CPU; after a warm-up, $ROUNDS rounds alternate between
# them (the order flips every round), so that the machine's drift affects both alike. Two
# scenarios: "keepalive" (wrk -t1 -c$CONNS with persistent connections, which the sync worker
# closes after each response anyway) and "close" (every request sends Connection: close).
# Measured: server CPU microseconds per request (utime+stime of master and worker over each run,
# from /proc/<pid>/stat, reaped children included) and the console script's ratio to the
# standalone (the issue's goal: within 5%); memory after warm-up: VmRSS and PSS (Pss of
# /proc/PID/smaps_rollup) of master and worker (goal for the console script: master + 1 worker
# <= 25 MiB RSS).
#
# Environment: CGUNICORN (default /work/main/build/cgunicorn), CGUNICORN_CONSOLE
# (/work/main/build/venv/bin/cgunicorn), APP_DIR (examples/), DURATION (5 s per run), WARMUP
# (2 s), ROUNDS (3), CONNS (50), SERVER_CPU (0), CLIENT_CPU (1), KEEP=1 keeps the work directory.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
CGUNICORN=${CGUNICORN:-/work/main/build/cgunicorn}
CONSOLE=${CGUNICORN_CONSOLE:-/work/main/build/venv/bin/cgunicorn}
APP_DIR=${APP_DIR:-$(cd "$HERE/../examples" && pwd)}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PY=/usr/bin/python3
LIB=("$PY" "$HERE/benchlib.py")
FRONTS="standalone console"

WORK=$(mktemp -d /tmp/cg-bench-frontends.XXXXXX)
RESULTS=$WORK/results.tsv
MEM=$WORK/mem.tsv
: >"$RESULTS"
: >"$MEM"
declare -A PID PORT

# say, stop_server (LIB must be set: the benchlib.py command line)
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cleanup() {
    local f
    for f in $FRONTS; do stop_server "${PID[$f]:-}"; done
    if [ "${KEEP:-0}" = 1 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in wrk taskset; do
    command -v "$tool" >/dev/null || { say "bench: $tool is required"; exit 1; }
done
[ -x "$CGUNICORN" ] || { say "bench: $CGUNICORN is not an executable (make build)"; exit 1; }
[ -x "$CONSOLE" ] || { say "bench: $CONSOLE is not an executable (make venv)"; exit 1; }
if [ "$(nproc)" -lt 2 ]; then
    say "bench: warning: fewer than 2 CPUs, server and wrk share a CPU"
    CLIENT_CPU=$SERVER_CPU
fi

for front in $FRONTS; do
    port=$("${LIB[@]}" port)
    PORT[$front]=$port
    args=(-w 1 -k sync -b "127.0.0.1:$port" --chdir "$APP_DIR" hello:app)
    if [ "$front" = standalone ]; then
        cmd=("$CGUNICORN" "${args[@]}")
    else
        # run by path, the venv not activated
        cmd=(env -u VIRTUAL_ENV -u PYTHONPATH PATH=/usr/local/bin:/usr/bin:/bin "$CONSOLE" "${args[@]}")
    fi
    say "== $front: ${cmd[*]}"
    # exec: $! is the master itself (env execs the console script in place)
    taskset -c "$SERVER_CPU" "${cmd[@]}" >"$WORK/$front.out" 2>"$WORK/$front.err" </dev/null &
    PID[$front]=$!
    if ! "${LIB[@]}" wait "$port" "${PID[$front]}" 15; then
        say "bench: $front did not answer GET / on port $port; its stderr ends:"
        tail -n 15 "$WORK/$front.err" | sed 's/^/    /' >&2
        exit 1
    fi
done

run_wrk() { # OUT SECONDS PORT [wrk args...]
    local out=$1 secs=$2 port=$3
    shift 3
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${secs}s" "$@" "http://127.0.0.1:$port/" >"$out" 2>&1
}

hdr_for() { [ "$1" = close ] && echo "Connection: close"; }

for front in $FRONTS; do
    for scen in keepalive close; do
        hdr=$(hdr_for "$scen")
        run_wrk "$WORK/$front-$scen-warm.txt" "$WARMUP" "${PORT[$front]}" ${hdr:+-H "$hdr"}
    done
    kill -0 "${PID[$front]}" 2>/dev/null || { say "bench: $front died during warm-up"; exit 1; }
    # master first (the root), then its one worker
    mapfile -t procs < <("${LIB[@]}" mem "${PID[$front]}")
    if [ "${#procs[@]}" -ne 2 ]; then
        say "bench: $front: expected a master and 1 worker, found: ${procs[*]}"
        exit 1
    fi
    read -r _ mrss mpss <<<"${procs[0]}"
    read -r _ wrss wpss <<<"${procs[1]}"
    say "  $front after warm-up: master RSS ${mrss} KiB PSS ${mpss} KiB, worker RSS ${wrss} KiB PSS ${wpss} KiB"
    printf '%s\t%s\t%s\t%s\t%s\n' "$front" "$mrss" "$mpss" "$wrss" "$wpss" >>"$MEM"
done

for round in $(seq "$ROUNDS"); do
    order=$FRONTS
    [ $((round % 2)) = 0 ] && order="console standalone"
    for scen in keepalive close; do
        hdr=$(hdr_for "$scen")
        for front in $order; do
            pid=${PID[$front]}
            out="$WORK/$front-$scen-$round.txt"
            c0=$("${LIB[@]}" cpu "$pid")
            run_wrk "$out" "$DURATION" "${PORT[$front]}" ${hdr:+-H "$hdr"}
            c1=$("${LIB[@]}" cpu "$pid")
            kill -0 "$pid" 2>/dev/null || { say "bench: $front died"; exit 1; }
            read -r reqs rps errors < <("${LIB[@]}" wrk "$out")
            say "  round $round $scen $front: $reqs requests, $rps req/s, $errors errors, $((c1 - c0)) CPU ticks"
            if [ "$reqs" -eq 0 ]; then
                say "  no requests completed; wrk said:"
                sed 's/^/    /' "$out" >&2
                exit 1
            fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$front" "$scen" "$round" "$reqs" "$rps" \
                "$((c1 - c0))" "$errors" >>"$RESULTS"
        done
    done
done

echo
echo "examples/hello.py, sync worker, 1 worker; servers on CPU $SERVER_CPU, wrk -t1 -c$CONNS on CPU" \
    "$CLIENT_CPU; $ROUNDS rounds of ${DURATION}s per front end and traffic after ${WARMUP}s warm-up" \
    "($(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), console script: $("${CONSOLE%/*}/python" -c \
    'import sys; print("Python %d.%d.%d" % sys.version_info[:3])'))"
echo
"${LIB[@]}" ftable "$RESULTS" "$MEM"
