#!/usr/bin/env bash
# bench/observability.sh - what metrics cost a request: the same app (examples/hello.py) served by
# several servers at once, gthread worker, --threads $THREADS, one worker each, differing only in
# their metrics: off; --metrics-bind (the workers write the scoreboard; the endpoint is scraped
# once a round, as Prometheus would); --statsd-host with the default batching
# (statsd_flush_interval 100 ms); statsd with one datagram per metric (statsd_flush_interval 0,
# Gunicorn's way); both metrics_bind and batched statsd (the issue's goal: <= 0.3 us over off);
# statsd to a port nobody listens on (a peer that is down). A local agent stand-in (benchlib.py
# sink) reads the datagrams, so the kernel delivers them as it would to a real agent.
#
# Servers pinned to CPU $SERVER_CPU, wrk (keep-alive, -t1 -c$CONNS) and the sink to $CLIENT_CPU;
# after a warm-up, $ROUNDS rounds run the variants back to back (the order rotates every round)
# so that the machine's drift affects all alike. Measured: server CPU microseconds per request,
# user and system apart (utime/stime of master and worker over each run, from /proc/<pid>/stat),
# and each variant's difference to off. `make bench-observability` runs it.
#
# Environment: CGUNICORN (default build/cgunicorn), APP_DIR (examples/), THREADS (1), VARIANTS
# (all of the above: off metrics statsd per-metric both statsd-down), DURATION (5 s per run),
# WARMUP (2 s), ROUNDS (5), CONNS (8), SERVER_CPU (0), CLIENT_CPU (1), KEEP=1 keeps the work
# directory.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
CGUNICORN=${CGUNICORN:-$HERE/../build/cgunicorn}
APP_DIR=${APP_DIR:-$(cd "$HERE/../examples" && pwd)}
THREADS=${THREADS:-1}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-8}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PY=/usr/bin/python3
LIB=("$PY" "$HERE/benchlib.py")
VARIANTS=${VARIANTS:-off metrics statsd per-metric both statsd-down}

WORK=$(mktemp -d /tmp/cg-bench-obs.XXXXXX)
RESULTS=$WORK/results.tsv
: >"$RESULTS"
declare -A PID PORT MPORT
SINK=

# say, stop_server (LIB must be set: the benchlib.py command line)
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cleanup() {
    local v
    for v in $VARIANTS; do stop_server "${PID[$v]:-}"; done
    if [ -n "$SINK" ]; then
        kill "$SINK" 2>/dev/null
        wait "$SINK" 2>/dev/null
    fi
    if [ "${KEEP:-0}" = 1 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in wrk taskset curl; do
    command -v "$tool" >/dev/null || { say "bench: $tool is required"; exit 1; }
done
[ -x "$CGUNICORN" ] || { say "bench: $CGUNICORN is not an executable (make build)"; exit 1; }
if [ "$(nproc)" -lt 2 ]; then
    say "bench: warning: fewer than 2 CPUs, servers and wrk share a CPU"
    CLIENT_CPU=$SERVER_CPU
fi

sink_port=$("${LIB[@]}" port)
taskset -c "$CLIENT_CPU" "${LIB[@]}" sink "$sink_port" &
SINK=$!
down_port=$("${LIB[@]}" port) # nobody listens there

for v in $VARIANTS; do
    port=$("${LIB[@]}" port)
    PORT[$v]=$port
    MPORT[$v]=$("${LIB[@]}" port)
    args=(-w 1 -k gthread --threads "$THREADS" -b "127.0.0.1:$port" --chdir "$APP_DIR")
    case $v in
    off) ;;
    metrics) args+=(--metrics-bind "127.0.0.1:${MPORT[$v]}") ;;
    statsd) args+=(--statsd-host "127.0.0.1:$sink_port") ;;
    per-metric) args+=(--statsd-host "127.0.0.1:$sink_port" --statsd-flush-interval 0) ;;
    both) args+=(--metrics-bind "127.0.0.1:${MPORT[$v]}" --statsd-host "127.0.0.1:$sink_port") ;;
    statsd-down) args+=(--statsd-host "127.0.0.1:$down_port") ;;
    *) say "bench: unknown variant $v"; exit 1 ;;
    esac
    cmd=("$CGUNICORN" "${args[@]}" hello:app)
    say "== $v: ${cmd[*]}"
    taskset -c "$SERVER_CPU" "${cmd[@]}" >"$WORK/$v.out" 2>"$WORK/$v.err" </dev/null &
    PID[$v]=$!
    if ! "${LIB[@]}" wait "$port" "${PID[$v]}" 15; then
        say "bench: $v did not answer GET / on port $port; its stderr ends:"
        tail -n 15 "$WORK/$v.err" | sed 's/^/    /' >&2
        exit 1
    fi
done

run_wrk() { # OUT SECONDS PORT
    taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${2}s" "http://127.0.0.1:$3/" >"$1" 2>&1
}

for v in $VARIANTS; do
    run_wrk "$WORK/$v-warm.txt" "$WARMUP" "${PORT[$v]}"
    kill -0 "${PID[$v]}" 2>/dev/null || { say "bench: $v died during warm-up"; exit 1; }
done

set -- $VARIANTS
for round in $(seq "$ROUNDS"); do
    for v in "$@"; do
        pid=${PID[$v]}
        out="$WORK/$v-$round.txt"
        read -r u0 s0 < <("${LIB[@]}" cpu2 "$pid")
        run_wrk "$out" "$DURATION" "${PORT[$v]}"
        read -r u1 s1 < <("${LIB[@]}" cpu2 "$pid")
        kill -0 "$pid" 2>/dev/null || { say "bench: $v died"; exit 1; }
        if [ "$v" = metrics ] || [ "$v" = both ]; then
            curl -sf "http://127.0.0.1:${MPORT[$v]}/metrics" >"$WORK/$v-$round.prom" ||
                { say "bench: $v: the metrics endpoint did not answer"; exit 1; }
        fi
        read -r reqs rps errors < <("${LIB[@]}" wrk "$out")
        say "  round $round $v: $reqs requests, $rps req/s, $errors errors," \
            "$((u1 - u0)) user + $((s1 - s0)) system ticks"
        if [ "$reqs" -eq 0 ]; then
            say "  no requests completed; wrk said:"
            sed 's/^/    /' "$out" >&2
            exit 1
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$round" "$reqs" "$rps" "$((u1 - u0))" \
            "$((s1 - s0))" "$errors" >>"$RESULTS"
    done
    # rotate the order: first this round runs last the next
    first=$1
    shift
    set -- "$@" "$first"
done

echo
echo "examples/hello.py, gthread --threads $THREADS, 1 worker; servers on CPU $SERVER_CPU, wrk -t1" \
    "-c$CONNS keep-alive and the UDP sink on CPU $CLIENT_CPU; $ROUNDS rounds of ${DURATION}s" \
    "per variant after ${WARMUP}s warm-up ($(date -u +%Y-%m-%dT%H:%MZ), $(uname -r))"
echo
"${LIB[@]}" otable "$RESULTS"
