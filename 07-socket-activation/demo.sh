# Chapter 07 demo (make run-07): a service started by its first connection, a socket for one
# group, and who the peer is. Everything lives in the demo's own directory, so it never disturbs
# a server you started yourself.
chmod 755 "$DEMO_DIR"  # other users may look inside (the group part runs a client as uid 65534)
cd "$DEMO_DIR" || exit 1  # so the trace's AT_FDCWD<...> is this directory, wherever make runs
# make trace-07: also the calls of steps S1 and S4-S6 and S11; not the tools' reading of /proc/sys
# and /proc/filesystems, nor the C library asking nscd for the group.
UDS_TRACE_CALLS="$UDS_TRACE_CALLS,fcntl,mkdir,chmod,fchmodat,chown,fchownat,renameat2,rmdir,readlinkat,pidfd_open"
UDS_TRACE_HIDE='</proc/(sys/|filesystems)|/nscd/'
sock="$DEMO_DIR/07-activation.sock"

# activate ADDR ARG...: the server under systemd-socket-activate, which plays systemd: it makes,
# binds and listens on ADDR at once, and execs the server (same pid, LISTEN_PID set) when the
# first connection arrives. Its own messages are turned off (SYSTEMD_LOG_LEVEL=notice): the
# demo shows what it did with ls and /proc instead. Under make trace-07 strace follows both.
activate() {
    local addr=$1
    shift
    trace_command
    ctl server server
    SYSTEMD_LOG_LEVEL=notice "${TRACE_CMD[@]}" systemd-socket-activate -l "$addr" \
        "$CHAPTER_DIR/server" "$@" </dev/null &
    SERVER_JOB=$!
    SERVER_PID=$SERVER_JOB
    # Ready when the socket file exists (a condition, waited for with a deadline).
    local tries=$((DEMO_TIMEOUT * 100))
    until [ -S "$addr" ] || [ "$tries" -eq 0 ]; do
        tries=$((tries - 1))
        sleep 0.01
    done
    [ -S "$addr" ] || { demo_fail "systemd-socket-activate did not make $addr"; exit 1; }
    if [ -n "${UDS_TRACE:-}" ]; then  # $SERVER_JOB is strace; the process it runs is its child
        SERVER_PID=$(pgrep -P "$SERVER_JOB" | head -n 1)
        ctl note "systemd-socket- is systemd-socket-activate (a command name is cut to 15 characters);" \
            "0x4d /* SO_??? */ below is SO_PEERPIDFD, newer than this strace"
    fi
}

if command -v systemd-socket-activate >/dev/null 2>&1; then
    say "systemd-socket-activate plays systemd: it makes, binds and listens on the socket; no server runs yet"
    activate "$sock"
    show ls -l "$sock"
    show cat "/proc/$SERVER_PID/comm"

    say "the first connection starts the server, which inherits the listening socket as descriptor 3"
    run_client -s "$sock" "hello, activation" "你好 abc"
    server_says 'connection closed'
    show cat "/proc/$SERVER_PID/comm"

    say "SIGTERM: the server exits and leaves the socket file alone: systemd-socket-activate made it"
    stop_server
    show ls -l "$sock"
else
    say "(skipped: systemd-socket-activate is not installed; apt-get install systemd)"
fi

gid= group=
for g in users daemon staff adm; do
    gid=$(getent group "$g" | cut -d: -f3)
    if [ -n "$gid" ] && [ "$gid" != 0 ] && [ "$gid" != 65534 ]; then group=$g; break; fi
done
if [ "$(id -u)" -eq 0 ] && [ -n "$group" ] && command -v setpriv >/dev/null 2>&1 &&
    setpriv --reuid 65534 --regid 65534 --clear-groups test -x "$CHAPTER_DIR/client"; then
    say "a socket for one group: mode 0660 and group $group are set before anyone can connect"
    start_server -s "$DEMO_DIR/group.sock" --mode 0660 --group "$group"
    show ls -l "$DEMO_DIR/group.sock"

    say "uid 65534 outside group $group: connect() fails with EACCES"
    show setpriv --reuid 65534 --regid 65534 --clear-groups \
        "$CHAPTER_DIR/client" -s "$DEMO_DIR/group.sock" "let me in" || true

    say "uid 65534 with $group as a supplementary group: served"
    show setpriv --reuid 65534 --regid 65534 --groups "$gid" \
        "$CHAPTER_DIR/client" -s "$DEMO_DIR/group.sock" "let me in"
    server_says 'connection closed'
    stop_server
else
    say "(skipped: the group part runs a client as uid 65534 with and without a group, which needs root and a checkout that user can read: try sudo make run-07)"
fi

say "who is the peer: pid, uid, gid from SO_PEERCRED; its program, read through a pidfd from SO_PEERPIDFD"
start_server -s "$DEMO_DIR/who.sock"
run_client -s "$DEMO_DIR/who.sock" "from the client"
server_says 'connection closed'
if command -v python3 >/dev/null 2>&1; then
    show python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"from python\n"); print(s.makefile().readline(), end="")' "$DEMO_DIR/who.sock"
    server_says 'connection closed'
fi
stop_server

say "without SO_PEERPIDFD (Linux < 6.5; here --no-peerpidfd) the pidfd comes late, and the log says so"
start_server -s "$DEMO_DIR/who.sock" --no-peerpidfd
run_client -s "$DEMO_DIR/who.sock" "from the client"
server_says 'connection closed'

say "stop the server: it removes the files it made; the one systemd-socket-activate made stays"
stop_server
show ls -A "$DEMO_DIR"
