# Chapter 03 demo: datagrams on a filesystem path. (Run with: make run-03)
# The demo uses a socket in a temporary directory so it never disturbs a server you started
# yourself on the default path.
sock="$DEMO_DIR/03-datagram.sock"
# Under make trace-03, also the calls of steps S2 (setsockopt) and S6 (openat O_PATH, fstat),
# but only those of S6: not the lock file's, stdio's or the stat of the server's own file.
UDS_TRACE_CALLS="$UDS_TRACE_CALLS,setsockopt,openat,fstat,newfstatat"
UDS_TRACE_HIDE='\bopenat\((?!.*O_PATH)|\bnewfstatat\((?!\d+<[^>]*\.sock>, "")|\bfstat\((?!\d+<[^>]*\.sock>)'

say "start the server: socket() and bind(), then it says 'bound to' (no listen, no accept)"
start_server -s "$sock"

if command -v ss >/dev/null 2>&1; then
    say "one socket, no connections: ss shows it as u_dgr UNCONN"
    show ss -xa src "$sock"
fi

say "each argument is one datagram; -v shows the client's autobound name (@ + 5 hex digits)"
run_client -v -s "$sock" "hello, datagrams" "你好 abc" ""
server_says 'bytes from' 3

say "with --bind the client has a path instead, and removes its file when it exits"
printf 'one\ntwo\nthree' | run_client -s "$sock" --bind "$DEMO_DIR/client.sock"
server_says 'bytes from' 3
show ls -A "$DEMO_DIR"

say "a datagram over 4096 bytes is detected with MSG_TRUNC, never cut silently"
head -c 5000 /dev/zero | tr '\0' x | run_client -s "$sock"
server_says 'bytes from'

if command -v python3 >/dev/null 2>&1; then
    say "a sender that never bound has no address: the server logs why it cannot answer"
    show python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"who am i?", sys.argv[1])' "$sock"
    server_says 'bytes from'
    say "...and goes on serving"
    run_client -s "$sock" "still there?"
    server_says 'bytes from'

    say "a sender swaps its socket file for a symlink to the server's own socket: no reply, no loop"
    show python3 -c 'import os, socket, sys; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[2]); os.unlink(sys.argv[2]); os.symlink(sys.argv[1], sys.argv[2]); s.sendto(b"loop?", sys.argv[1])' "$sock" "$DEMO_DIR/evil.sock"
    server_says 'bytes from'
    rm -f "$DEMO_DIR/evil.sock"
fi

say "stop the server with SIGTERM: it removes its socket file and exits 0"
stop_server
show ls -A "$DEMO_DIR"

say "with no server, the client explains what went wrong (and exits 1)"
run_client -s "$sock" "anyone there?" || true
