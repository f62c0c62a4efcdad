# Chapter 01 demo: a stream server on a filesystem path. (Run with: make run-01)
# The demo uses a socket in a temporary directory so it never disturbs a server you started
# yourself on the default path.
sock="$DEMO_DIR/01-stream.sock"

say "start the server; it says 'listening on' once bind() and listen() are done"
start_server -s "$sock"

say "the socket file exists while the server runs (type 's' in ls -l)"
show ls -l "$sock"

say "each argument is one request; note the peer is unnamed and there are no ports"
run_client -s "$sock" "hello, world" "你好 abc"
server_says 'connection closed'

say "with no arguments the client sends the lines of its stdin"
printf 'one\ntwo\nthree' | run_client -s "$sock"
server_says 'connection closed'

say "stop the server with SIGTERM: it removes its socket file and exits 0"
stop_server
show ls -A "$DEMO_DIR"

say "with no server, the client explains what went wrong (and exits 1)"
run_client -s "$sock" "anyone there?" || true
