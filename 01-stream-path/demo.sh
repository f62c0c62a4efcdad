# Chapter 01 demo: a stream server on a filesystem path. (Run with: make run-01)
# The demo uses a socket in a temporary directory so it never disturbs a server you started
# yourself on the default path.
sock="$DEMO_DIR/01-stream.sock"
UDS_TRACE_CALLS="$UDS_TRACE_CALLS,flock"  # make trace-01: show the lock that claims the path

say "start the server; it says 'listening on' once bind() and listen() are done"
start_server -s "$sock"

say "while it runs: the socket file (type 's') and the lock file that claims its path"
show ls -l "$DEMO_DIR"

say "each argument is one request; note the peer is unnamed and there are no ports"
run_client -s "$sock" "hello, world" "你好 abc"
server_says 'connection closed'

say "with no arguments the client sends the lines of its stdin"
printf 'one\ntwo\nthree' | run_client -s "$sock"
server_says 'connection closed'

say "stop the server with SIGTERM: it removes its socket file and exits 0 (the lock file stays)"
stop_server
show ls -A "$DEMO_DIR"

say "a crash leaves a stale socket file (Python makes one here); the next server removes it"
show python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$sock"
show ls -l "$sock"
start_server -s "$sock"
stop_server

say "with no server, the client explains what went wrong (and exits 1)"
run_client -s "$sock" "anyone there?" || true
