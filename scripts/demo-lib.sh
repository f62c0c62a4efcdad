# demo-lib.sh - helpers for the chapter demos (make run-NN, make trace-NN).
# scripts/run-demo sources this file, calls demo_begin, then sources NN-name/demo.sh with
# CHAPTER_DIR (where the chapter's programs are) and DEMO_DIR (a fresh temporary directory,
# removed at the end). The demo's exit status is non-zero if anything below failed.
#
# Writing a demo.sh
#   say TEXT              a section header: "== TEXT"
#   show CMD ARG...       print "$ CMD ARG..." quoted so that it can be pasted as printed, then
#                         run it; its output is indented. For commands a student may type.
#   start_server ARG...   start the chapter's server ($SERVER if set, a path relative to the
#                         chapter, e.g. SERVER=../01-stream-path/server) in the background and
#                         wait until it logs its ready line ("listening on" or "bound to"); the
#                         demo stops if it never does. $SERVER_PID is then the server's own pid
#                         (under strace too), e.g. for: show ls -l /proc/$SERVER_PID/fd
#   run_client ARG...     run the chapter's client ($CLIENT if set, e.g. CLIENT=loadgen) in the
#                         foreground and return its status. RUN_AS=nobody run_client ... runs it
#                         as that user (needs root), labelled with the user's name.
#   server_says TEXT [N]  wait until the server has logged N (default 1) more lines containing
#                         TEXT since the previous wait. Call it before the next say, so that a
#                         connection's log lines stay in its section:
#                             run_client -s "$sock" hello; server_says 'connection closed'
#                         (the server logs after the client has printed its last reply).
#   stop_server           SIGTERM, wait for the server to exit, print its status.
#   Nothing synchronises by sleeping: waits are for a line, with a deadline (DEMO_TIMEOUT
#   seconds, default 10); a wait that expires says why, and the demo exits non-zero.
#
# What the programs must do (all of ours do): write each line with one write() (a log line, a
#   reply); begin log and error lines with the program's name, "server: ...", "client: ...";
#   a server logs its ready line when it is ready ("listening on" after listen(), "bound to"
#   after bind()). A server that logs more startup lines after it should be waited for
#   (05: server_says 'serving files beneath').
#
# How the lines stay in order
#   Every program the demo runs - servers, clients, strace, shown commands, and this script
#   itself - writes its stdout and stderr straight into ONE pipe, the demo pipe, and one process,
#   scripts/demo-labeller, reads it in order and prints each line with who wrote it:
#       == ...           this script (say), $ ... a shown command, indented lines its output
#       server | ...     the server's log (its lines begin with "server: ")
#       client | ...     the foreground program's plain lines (a client's replies)
#       client ! ...     its lines of the form "client: message" (errors, -v)
#       server ~ ...     a system call, under make trace-NN (server[PID] ~ for a forked child
#                        or a thread of that program)
#   A pipe keeps the order of writes, and each line is one write, so lines come out in the
#   order they were written. Do not put a relay (| sed, | while read) after a program that runs
#   while others write: its lines would lose their place. (show's and run_client's input may
#   come from a pipe, as in: printf 'a\nb' | run_client ...)
#   Under strace (-e status=!unfinished) each call's line is written whole when the call
#   returns, before the program goes on, so a program's own line after a call follows that
#   call's line. Across programs the labeller puts effects after their causes (connect before
#   accept, send before receive): see "Order" at the top of demo-labeller.
#   The script tells the labeller what runs in the foreground with control lines (ctl).
#
# make trace-NN (UDS_TRACE=1): servers and clients run under strace -f -yy -Y, limited to
#   UDS_TRACE_CALLS; a demo.sh may add calls before it starts a program, e.g.
#   UDS_TRACE_CALLS="$UDS_TRACE_CALLS,epoll_wait". UDS_TRACE_HIDE (a Perl regex) drops more trace
#   lines. What the labeller drops or shortens by itself is listed at the top of demo-labeller.
#   Programs started otherwise (04's interactive clients, show's commands) are not traced.

DEMO_TIMEOUT=${DEMO_TIMEOUT:-10}
UDS_TRACE_CALLS=${UDS_TRACE_CALLS:-socket,socketpair,bind,listen,accept4,connect,shutdown,sendmsg,recvmsg,sendto,recvfrom,read,write,close,unlink,getsockopt,getsockname,getpeername}
UDS_TRACE_HIDE=${UDS_TRACE_HIDE:-}
DEMO_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEMO_STATUS=0      # becomes 1 when a wait expires; run-demo exits with it
SERVER_PID=        # the server's own pid
SERVER_JOB=        # what we started in the background: the server, or strace running it
SERVER_LOG_SEEN=0  # lines of the server log copy that server_says has read
DEMO_STATE=        # our own files (the server log copy), apart from DEMO_DIR, which demos list
LABELLER_PID=
TRACE_SHOWN=

# ctl WORD ARG...: a control line for the labeller (see demo-labeller).
ctl() {
    local IFS=$'\t'
    printf '\037%s\n' "$*"
}

# demo_fail MESSAGE: say what went wrong; the demo will exit non-zero.
demo_fail() {
    printf 'demo: %s\n' "$*"
    DEMO_STATUS=1
}

say() { printf '\n== %s\n' "$*"; }

# shell_quote ARG...: the arguments as one line a shell reads back as the same words.
shell_quote() {
    local out=() a
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
            out+=("$a")
        else
            out+=("'${a//\'/\'\\\'\'}'")
        fi
    done
    printf '%s' "${out[*]}"
}

show() {
    local line
    line=$(shell_quote "$@")
    printf '$ %s\n' "$line"
    if [ -n "${DEMO_CHECK_QUOTING:-}" ]; then    # set by check-demo-order
        local -a back
        eval "back=($line)"
        [ "$(printf '%q\n' "${back[@]}")" = "$(printf '%q\n' "$@")" ] ||
            demo_fail "show: the line above does not read back as the command it ran"
    fi
    ctl show
    "$@"
    local status=$?
    ctl plain
    return "$status"
}

# trace_command: TRACE_CMD=(strace ...) under make trace-NN, else (); says once how it traces.
trace_command() {
    TRACE_CMD=()
    [ -n "${UDS_TRACE:-}" ] || return 0
    TRACE_CMD=(strace -f -qq -yy -Y -s 48 -e 'status=!unfinished' -e "trace=$UDS_TRACE_CALLS"
        -o /proc/self/fd/2)
    if [ "$TRACE_SHOWN" != "$UDS_TRACE_CALLS" ]; then
        TRACE_SHOWN=$UDS_TRACE_CALLS
        ctl note "servers and clients run under $(shell_quote "${TRACE_CMD[@]}") PROGRAM ARG...;" \
            "a call's line is printed when the call returns, so what it wrote, or what another" \
            "process did meanwhile, may come first"
    fi
    ctl hide "$UDS_TRACE_HIDE"
}

start_server() {
    local prog=${SERVER:-server} name
    name=$(basename "$prog")
    if [ -n "$SERVER_JOB" ]; then
        demo_fail "start_server: a server is already running"
        return 1
    fi
    if [ ! -x "$CHAPTER_DIR/$prog" ]; then
        demo_fail "start_server: there is no program $CHAPTER_DIR/$prog (not built?); stopping the demo"
        exit 1
    fi
    trace_command
    ctl server "$name"
    "${TRACE_CMD[@]}" "$CHAPTER_DIR/$prog" "$@" </dev/null &
    SERVER_JOB=$!
    SERVER_PID=$SERVER_JOB
    if ! SERVER_SAYS_REGEX=1 server_says 'listening on|bound to'; then
        demo_fail "the server did not say it was ready; stopping the demo"
        exit 1
    fi
    if [ -n "${UDS_TRACE:-}" ]; then
        # $SERVER_JOB is strace; the server is its only child.
        SERVER_PID=$(pgrep -P "$SERVER_JOB" -x "${name:0:15}" | head -n 1)
        [ -n "$SERVER_PID" ] || SERVER_PID=$SERVER_JOB
    fi
}

run_client() {
    local prog=${CLIENT:-client} name label status
    name=$(basename "$prog")
    label=${RUN_AS:-$name}
    trace_command
    ctl run "$label" "$name"
    if [ -n "${RUN_AS:-}" ] && [ -n "${UDS_TRACE:-}" ]; then
        "${TRACE_CMD[@]}" -u "$RUN_AS" "$CHAPTER_DIR/$prog" "$@"
    elif [ -n "${RUN_AS:-}" ]; then
        setpriv --reuid "$(id -u "$RUN_AS")" --regid "$(id -g "$RUN_AS")" --clear-groups \
            "$CHAPTER_DIR/$prog" "$@"
    else
        "${TRACE_CMD[@]}" "$CHAPTER_DIR/$prog" "$@"
    fi
    status=$?
    ctl plain
    return "$status"
}

# server_says TEXT [N]; SERVER_SAYS_REGEX=1 server_says REGEX [N] for a bash regex (=~).
server_says() {
    local pattern=$1 want=${2:-1} found=0 line fd tail_pid
    if [ -z "$SERVER_JOB" ]; then
        demo_fail "server_says '$pattern': no server is running"
        return 1
    fi
    # tail -f follows the labeller's copy of the server's lines; --pid ends it if the server dies,
    # timeout at the deadline. Each line is read once: the next wait starts after it.
    exec {fd}< <(exec timeout "$DEMO_TIMEOUT" tail -n "+$((SERVER_LOG_SEEN + 1))" \
        --pid="$SERVER_JOB" -f "$DEMO_STATE/server.log")
    tail_pid=$!
    while [ "$found" -lt "$want" ] && IFS= read -r -u "$fd" line; do
        SERVER_LOG_SEEN=$((SERVER_LOG_SEEN + 1))
        if [ -n "${SERVER_SAYS_REGEX:-}" ]; then
            [[ $line =~ $pattern ]] && found=$((found + 1))
        elif [[ $line == *"$pattern"* ]]; then
            found=$((found + 1))
        fi
    done
    kill "$tail_pid" 2>/dev/null
    exec {fd}<&-
    wait "$tail_pid" 2>/dev/null
    if [ "$found" -lt "$want" ]; then
        if kill -0 "$SERVER_JOB" 2>/dev/null; then
            demo_fail "the server did not log '$pattern' ($want times) within ${DEMO_TIMEOUT}s"
        else
            demo_fail "the server exited before it logged '$pattern' ($want times)"
        fi
        return 1
    fi
}

stop_server() {
    [ -n "$SERVER_JOB" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null
    local status=0
    wait "$SERVER_JOB" || status=$?
    ctl stopped
    SERVER_JOB= SERVER_PID=
    printf '  (server exited with status %s)\n' "$status"
    return "$status"
}

# demo_begin: start the labeller and send our own stdout and stderr into the demo pipe.
demo_begin() {
    DEMO_STATE=$(mktemp -d /tmp/uds-demo-state-XXXXXX)
    : >"$DEMO_STATE/server.log"
    local pipe
    exec {pipe}> >(exec perl "$DEMO_LIB_DIR/demo-labeller" "$DEMO_STATE/server.log")
    LABELLER_PID=$!
    exec 1>&"$pipe" 2>&1 {pipe}>&-
}

# demo_end: stop what is still running, let the labeller print the last lines, clean up.
demo_end() {
    local status=$?
    [ "$status" -ne 0 ] || status=$DEMO_STATUS
    trap '' PIPE    # the labeller may be gone (make trace-01 | head): clean up all the same
    if [ -n "$SERVER_JOB" ]; then    # the demo stopped early: SIGTERM (it ends its children)
        kill -TERM "$SERVER_PID" 2>/dev/null
        timeout 2 tail --pid="$SERVER_PID" -f /dev/null
        kill -KILL "$SERVER_PID" "$SERVER_JOB" 2>/dev/null
        wait "$SERVER_JOB" 2>/dev/null
    fi
    ctl end
    exec 1>&- 2>&-
    [ -n "$LABELLER_PID" ] && wait "$LABELLER_PID" 2>/dev/null
    rm -rf "$DEMO_DIR" "$DEMO_STATE"
    exit "$status"
}
