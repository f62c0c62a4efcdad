# Chapter 04 demo: many clients at once. (Run with: make run-04)
# Three interactive clients (A, B, C) take turns sending a line; each waits for its own reply
# before the next one speaks, so the output shows the server serving all three at once.
sock="$DEMO_DIR/04.sock"
# make trace-04: this chapter's lesson is also epoll_create1/epoll_ctl/epoll_wait (epoll model),
# clone + wait4 (fork: glibc's fork() is the clone system call, waitpid() is wait4) and clone3
# (pthread_create). demo-lib.sh's list has only the calls every chapter shares, so add ours
# here, before any program starts (traced reads the list when it starts one).
UDS_TRACE_CALLS="$UDS_TRACE_CALLS,epoll_create1,epoll_ctl,epoll_wait,clone,clone3,wait4"
# Under strace the load generator's 20,000 requests would be 20,000 lines of trace: fewer then.
if [ -n "${UDS_TRACE:-}" ]; then LOADGEN_ARGS=(-c 3 -n 6 --pipeline 2); else LOADGEN_ARGS=(-c 20 -n 20000 --pipeline 4); fi
declare -A TO FROM PID

# open_client NAME: an interactive client whose stdin and stdout are FIFOs we hold.
open_client() {
    local name=$1 fd_in fd_out
    mkfifo "$DEMO_DIR/$name.in" "$DEMO_DIR/$name.out"
    # The new client must not inherit the FIFOs of the others, or they would never see EOF.
    # It says it started before it runs, so that this line comes before the server's.
    (
        for fd in "${TO[@]}" "${FROM[@]}"; do exec {fd}>&-; done
        printf '  client %s | (started, pid %s)\n' "$name" "$BASHPID"
        exec "$CHAPTER_DIR/client" -s "$sock" <"$DEMO_DIR/$name.in" >"$DEMO_DIR/$name.out" 2>&1
    ) &
    PID[$name]=$!
    exec {fd_in}>"$DEMO_DIR/$name.in" {fd_out}<"$DEMO_DIR/$name.out"
    TO[$name]=$fd_in
    FROM[$name]=$fd_out
}

# send_line NAME TEXT: one request from that client.
send_line() { printf '  client %s > %s\n' "$1" "$2"; printf '%s\n' "$2" >&"${TO[$1]}"; }

# get_reply NAME [SECONDS]: its reply, waited for with a deadline.
get_reply() {
    local reply
    if IFS= read -r -t "${2:-$DEMO_TIMEOUT}" -u "${FROM[$1]}" reply; then
        printf '  client %s | %s\n' "$1" "$reply"
    else
        printf '  client %s | (no reply within %ss)\n' "$1" "${2:-$DEMO_TIMEOUT}"
        return 1
    fi
}

# close_client NAME: end of input; the client exits, and the server sees end of file.
close_client() {
    local to=${TO[$1]} from=${FROM[$1]}
    exec {to}>&- {from}<&-
    unset "TO[$1]" "FROM[$1]"
    wait "${PID[$1]}" 2>/dev/null
    rm -f "$DEMO_DIR/$1.in" "$DEMO_DIR/$1.out"
}

say "the epoll server (the default model): one thread, many clients"
start_server -s "$sock"
# One at a time, each accepted before the next starts: the same client gets the same
# descriptor in every run (make trace-04's excerpts in the README rely on it).
for c in A B C; do
    open_client "$c"
    server_says 'connected (pid'
done

say "A, B and C are all connected; they take turns, and every one is answered at once"
for round in 1 2; do
    for c in A B C; do
        send_line "$c" "hello from $c, round $round"
        get_reply "$c"
    done
done
for c in A B C; do close_client "$c"; done
server_says 'left, 0 connected'

say "many more at once: the load generator opens ${LOADGEN_ARGS[1]} connections at once and checks every reply"
CLIENT=loadgen run_client -s "$sock" "${LOADGEN_ARGS[@]}"
server_says 'left, 0 connected'
stop_server

say "for contrast, chapter 01's iterative server: B must wait until A leaves"
SERVER=../01-stream-path/server start_server -s "$sock"
# A must be connected (and answered) before B starts, or B could be accepted first.
open_client A
send_line A "A is being served"
get_reply A
open_client B
send_line B "B would like an answer"
get_reply B 1 || say "B's connect() succeeded (the kernel queued it) but nobody reads its request"
close_client A
get_reply B
close_client B
server_says 'connection closed' 2
stop_server

say "the fork model with --max-clients 2: a third client is turned away"
start_server -s "$sock" --model fork --max-clients 2
open_client A
open_client B
server_says 'client connected' 2
send_line A "one"
get_reply A
send_line B "two"
get_reply B
run_client -s "$sock" "three" || true
server_says 'busy'
close_client A
close_client B
server_says 'client left' 2

say "SIGTERM: the server stops accepting, closes every client, removes its socket, exits 0"
stop_server
show ls -A "$DEMO_DIR"
