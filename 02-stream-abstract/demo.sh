# Chapter 02 demo: the same server on a Linux abstract name, with peer checks. (make run-02)
# The demo uses its own name (not the default @uds-tutorial-UID-02), so it never disturbs a
# server you started yourself. Its length is the same in every run (the pid padded to 7 digits),
# and so is the address length the trace shows.
name=$(printf 'uds-demo-%07d-02' "$$")

say "start the server on the abstract name @$name ('@' stands for the leading NUL byte)"
start_server -s "@$name"

say "there is no file: the name lives in the kernel; ss and /proc/net/unix print it with '@'"
show ss -xl src "@$name"
show grep -F "@$name" /proc/net/unix

say "the client connects by name, with the exact address length, and is served"
run_client -s "@$name" "hello, world" "你好 abc"
server_says 'connection closed'

if command -v python3 >/dev/null 2>&1; then
    say "any program can connect: in Python an abstract address is the string '\\0name'"
    show python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect("\0" + sys.argv[1]); s.sendall(b"from python\n"); print(s.makefile().readline(), end="")' "$name"
    server_says 'connection closed'

    say "the length is part of the name: padded with NULs to sizeof(struct sockaddr_un), 108 bytes, it is a name nobody holds"
    show python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(("\0" + sys.argv[1]).ljust(108, "\0"))' "$name" || true
fi

say "a name is not an identity: anyone could have bound it first, so the client asks the kernel who holds it (SO_PEERCRED); told to trust only uid 4242, it sends nothing and refuses"
run_client -s "@$name" --server-uid 4242 "my secret" || true
server_says 'connection closed'

if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1 &&
    setpriv --reuid 65534 --regid 65534 --clear-groups test -x "$CHAPTER_DIR/client"; then
    say "anyone may connect to an abstract name, so the server checks SO_PEERCRED: it refuses nobody (uid 65534) and goes on"
    RUN_AS=nobody run_client -s "@$name" "let me in"
    server_says 'refused a connection'
    run_client -s "@$name" "still serving"
    server_says 'connection closed'

    say "restart the server with --allow-uid 65534: now nobody is served too"
    stop_server
    start_server -s "@$name" --allow-uid 65534
    RUN_AS=nobody run_client -s "@$name" "let me in"
    server_says 'connection closed'
else
    say "(skipped: the peer-check part runs the client as the user nobody, which needs root and a checkout nobody can read: try sudo make run-02)"
fi

say "stop the server with SIGTERM: the name disappears with its socket; nothing to unlink"
stop_server
show ss -xl src "@$name"

say "with no server, the client explains what went wrong (and exits 1)"
run_client -s "@$name" "anyone there?" || true
