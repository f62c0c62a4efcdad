# demo-lib.sh - helpers for the chapter demos (make run-NN). Sourced by scripts/run-demo.
#
# Every line is labelled with the side that printed it:
#   server | ...   the server's log (stderr)
#   client | ...   what the client printed on stdout (the replies)
#   client ! ...   what the client printed on stderr (errors)
# Nothing here sleeps to synchronise: we read the server's log until it says it is ready,
# with a deadline.

DEMO_TIMEOUT=${DEMO_TIMEOUT:-10}
# make trace-NN sets UDS_TRACE=1: every program then runs under strace, limited to the calls
# the chapters teach, with -yy so each descriptor shows its socket address. The trace lines go
# to the program's stderr, so they are labelled with its side like its log lines.
UDS_TRACE_CALLS=${UDS_TRACE_CALLS:-socket,socketpair,bind,listen,accept4,connect,shutdown,sendmsg,recvmsg,sendto,recvfrom,read,write,close,unlink,getsockopt,getsockname,getpeername}

# Trace lines matching UDS_TRACE_HIDE are dropped: the dynamic loader reading libraries, our own
# log writes, stdio pipes; they are not part of the lesson. A demo.sh may set its own before it
# starts a program (chapter 05 passes a pipe in a message, so its trace shows pipes).
UDS_TRACE_HIDE=${UDS_TRACE_HIDE:-'</(usr/)?lib|</etc/|</usr/|/dev/tty|<pipe:|resumed>|<unfinished|exited with|\+\+\+|--- SIG|write\([12]<'}

# traced CMD...: exec CMD, under strace when UDS_TRACE is set, without the UDS_TRACE_HIDE lines.
# It uses exec, so call it only where bash runs it in a subshell (with & or in a pipeline).
traced() {
    if [ -n "${UDS_TRACE:-}" ]; then
        exec strace -f -qq -yy -s 48 -e trace="$UDS_TRACE_CALLS" \
            -o "|grep --line-buffered -v -E '$UDS_TRACE_HIDE' >&2" "$@"
    else
        exec "$@"
    fi
}
SERVER_PID=
RELAY_PID=

say() { printf '\n== %s\n' "$*"; }

# show CMD...: print a command, then run it with its output indented.
show() {
    printf '$ %s\n' "$*"
    "$@" 2>&1 | sed 's/^/    /'
}

# start_server ARGS...: start "$CHAPTER_DIR/${SERVER:-server}" and wait for its ready line
# ("listening on" or "bound to").
start_server() {
    local fifo="$DEMO_DIR/server.log.fifo" line
    rm -f "$fifo"
    mkfifo "$fifo"
    traced "$CHAPTER_DIR/${SERVER:-server}" "$@" 2>"$fifo" &
    SERVER_PID=$!
    exec 3<"$fifo"
    rm -f "$fifo"
    while :; do
        if ! IFS= read -r -t "$DEMO_TIMEOUT" -u 3 line; then
            printf 'demo: the server did not say it was ready within %ss\n' "$DEMO_TIMEOUT" >&2
            return 1
        fi
        printf '  server | %s\n' "$line"
        case "$line" in *"listening on"* | *"bound to"*) break ;; esac
    done
    # From now on, relay the server's log in the background.
    sed -u 's/^/  server | /' <&3 &
    RELAY_PID=$!
    exec 3<&-
}

# run_client ARGS...: run the chapter's client (or $CLIENT) with labelled output.
run_client() {
    # pipefail: the status is the client's, not that of the sed that labels its output.
    (
        set -o pipefail
        { traced "$CHAPTER_DIR/${CLIENT:-client}" "$@" 2>&1 1>&4 | sed -u 's/^/  client ! /' >&2; } 4>&1 |
            sed -u 's/^/  client | /'
    )
}

# stop_server: SIGTERM, then wait for it to exit and for its last log lines.
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    if [ -n "${UDS_TRACE:-}" ]; then
        # $SERVER_PID is strace: signal the server it runs, and strace exits with it.
        pkill -TERM -P "$SERVER_PID" -x "$(basename "${SERVER:-server}")" 2>/dev/null
    else
        kill -TERM "$SERVER_PID" 2>/dev/null
    fi
    local status=0
    wait "$SERVER_PID" || status=$?
    SERVER_PID=
    [ -n "$RELAY_PID" ] && wait "$RELAY_PID" 2>/dev/null
    RELAY_PID=
    printf '  (server exited with status %s)\n' "$status"
    return "$status"
}

demo_cleanup() {
    if [ -n "$SERVER_PID" ]; then
        pkill -KILL -P "$SERVER_PID" 2>/dev/null
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    [ -n "$RELAY_PID" ] && wait "$RELAY_PID" 2>/dev/null
    rm -rf "$DEMO_DIR"
}
