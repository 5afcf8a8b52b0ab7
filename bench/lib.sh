# Shell helpers the bench scripts share (sourced; needs LIB, the command
# line of benchlib.py, as an array).

say() { printf '%s\n' "$*" >&2; }

stop_server() {
    local pid=$1 pids i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    pids=$("${LIB[@]}" pids "$pid" 2>/dev/null)
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "  $pid did not stop on TERM; killing it and its workers ($pids)"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}
