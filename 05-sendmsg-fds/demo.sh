# Chapter 05 demo: a file broker that passes open descriptors (SCM_RIGHTS). (make run-05)
# It serves a copy of files/ from a temporary directory, so that we can plant traps in it.
src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
sock="$DEMO_DIR/05-fd-broker.sock"
root="$DEMO_DIR/root"
cp -R "$src_dir/files" "$root"
echo "not for clients" > "$DEMO_DIR/private.txt"
ln -s /etc/passwd "$root/escape"      # a symlink leading out of the root
ln -s / "$root/slash"                 # a symlinked directory leading out
mkfifo "$root/fifo"                   # opened for reading, this would block: it is never opened
ln "$DEMO_DIR/private.txt" "$root/linked.txt"   # a second name for a file outside the root
# make trace-05: also the SO_PASSCRED of S1a and the confined lookups (openat2).
UDS_TRACE_CALLS="$UDS_TRACE_CALLS,setsockopt,openat2"

say "the root the broker serves (the traps: escape, slash, fifo, and linked.txt with 2 links)"
show ls -l "$root"

say "start the broker: it opens the root once, then listens"
start_server -s "$sock" --root "$root"
server_says 'serving files beneath'

say "the client asks for files and reads them through the descriptors it receives"
say "(compare: the server logs 'sent descriptor N', the client 'received descriptor M'; M != N)"
run_client -s "$sock" hello.txt greetings-utf8.txt docs/notes.txt
server_says 'connection closed'

say "attacks: each gets ERROR and no descriptor (the client exits 1)"
run_client -s "$sock" /etc/passwd ../../etc/passwd escape slash/etc/passwd fifo docs linked.txt || true
server_says 'connection closed'

say "GREET: the client lends its stdout (fd 1); the SERVER writes the next line into it"
run_client -s "$sock" --greet
server_says 'connection closed'

say "the server's descriptors: stdio, the stop pipe, the root, the listener, the .lock file; none of the files it passed"
show ls -l /proc/$SERVER_PID/fd

say "stop the broker: it removes its socket file and exits 0"
stop_server
