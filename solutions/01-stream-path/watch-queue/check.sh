#!/usr/bin/env bash
# Exercise 1 of chapter 01 (observation, the chapter's own programs): while the server talks to
# one client, a second one's connect succeeds and waits in the listen queue, which `ss -xl` shows
# as Recv-Q 1 on the listener (Send-Q is the backlog, 16). When the first leaves, the second is
# accepted and answered at once.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
command -v ss >/dev/null || skip "ss is not installed (iproute2)"
server=$(ref_bin server)
sock=$(sock_path queue)
start server "$server" -s "$sock"
wait_log server "listening on"

queue() {  # Recv-Q and Send-Q of the listener on $sock
    ss -xlnH | awk -v p="$sock" '$5 == p { print $3, $4 }'
}
python3 - "$sock" "$WORK/step" <<'PY' &
import socket, sys, time
path, step = sys.argv[1], sys.argv[2]
def line(s):
    got = b""
    while not got.endswith(b"\n"):
        b = s.recv(100)
        assert b, "end of file"
        got += b
    return got
a = socket.socket(socket.AF_UNIX); a.settimeout(5); a.connect(path); a.sendall(b"first\n")
assert line(a) == b"FIRST\n"
b = socket.socket(socket.AF_UNIX); b.settimeout(5)
b.connect(path)  # succeeds: the kernel queues the connection; nobody has accepted it
b.sendall(b"second\n")
open(step, "w").write("waiting\n")
b.settimeout(0.3)
try:
    b.recv(100)
    sys.exit("the second client was answered while the first was still connected")
except socket.timeout:
    pass
while open(step).read() != "looked\n":  # the shell reads ss meanwhile
    time.sleep(0.01)
a.close()
b.settimeout(5)
t0 = time.monotonic()
assert line(b) == b"SECOND\n"
print(f"  ok: the first client left; the second was answered {1000 * (time.monotonic() - t0):.0f} ms later")
PY
py=$!
_pids+=("$py")
limit=$(($(_now_ms) + 10000))
until [ "$(cat "$WORK/step" 2>/dev/null)" = waiting ]; do
    [ "$(_now_ms)" -lt "$limit" ] || fail "the two clients never got connected"
    sleep 0.02
done
q=$(queue)
[ "${q%% *}" = 1 ] || fail "ss -xl showed Recv-Q/Send-Q '$q' for the listener, expected 1 16"
ok "first client answered; second connected, no reply yet; ss -xl: Recv-Q ${q% *}, Send-Q ${q#* } (the backlog)"
echo looked >"$WORK/step"
wait "$py" || fail "see above"
q=$(queue)
[ "${q%% *}" = 0 ] || fail "after the second was accepted ss -xl showed Recv-Q '${q%% *}'"
ok "ss -xl after it: Recv-Q 0"
echo "$CHAPTER/$NAME: connect is queued by the kernel (Recv-Q 1), accept is the server's, one client at a time"
