#!/usr/bin/env bash
# Exercise 5 of chapter 05: with --rights-for-greet-only the broker's connections refuse
# descriptors (SO_PASSRIGHTS = 0, Linux 6.16) until the client sends MODE GREET. A descriptor
# sent unasked fails in the sender's sendmsg (EPERM): it never reaches the broker.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
use_solution server client
python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.setsockopt(socket.SOL_SOCKET, 83, 0)' 2>/dev/null ||
    skip "this kernel ($(uname -r)) has no SO_PASSRIGHTS (Linux 6.16 or later)"
sock=$(sock_path strict)
start server "$SERVER" -s "$sock" --root "$ROOT/$CHAPTER/files" --rights-for-greet-only
wait_log server "serving files beneath"
python3 - "$sock" <<'PY' || fail "see above"
import array, os, socket, sys
path = sys.argv[1]
def conn():
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    return s
r, w = os.pipe()
s = conn()
try:
    s.sendmsg([b"OPEN hello.txt\n"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w] * 1))])
    sys.exit("a descriptor attached to OPEN was sent")
except PermissionError as e:
    print(f"  ok: a descriptor sent with OPEN, unasked: our sendmsg fails: {e.strerror} (EPERM)")
s.sendall(b"OPEN hello.txt\n")
msg, anc, _, _ = s.recvmsg(100, socket.CMSG_SPACE(4))
assert msg.startswith(b"OK ") and anc, msg
print(f"  ok: the same connection still gets its file: {msg.decode().strip()} and a descriptor")
g = conn()
g.sendall(b"MODE GREET\n")
assert g.recv(10) == b"OK\n"
g.sendmsg([b"GREET\n"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [w]))])
assert g.recv(10) == b"OK\n"
os.close(w)
print(f"  ok: MODE GREET, then GREET with our pipe: OK; the pipe says {os.read(r, 40)!r}...")
PY
out=$("$(ref_bin client)" -s "$sock" --greet 2>&1) && fail "the chapter's client lent its stdout without MODE GREET"
grep -q "Operation not permitted" <<<"$out" || fail "the chapter's client --greet: $out"
ok "the chapter's client --greet (no MODE GREET): $(grep -o 'sendmsg.*Operation not permitted' <<<"$out" | head -n 1)"

start plain "$SERVER" -s "$(sock_path plain)" --root "$ROOT/$CHAPTER/files"
wait_log plain "serving files beneath"
out=$("$(ref_bin client)" -s "$(sock_path plain)" --greet 2>/dev/null) || fail "without the option GREET failed"
grep -q "hello from the file broker" <<<"$out" || fail "without the option: $out"
ok "without --rights-for-greet-only: the chapter's GREET works as before"
echo "$CHAPTER/$NAME: SO_PASSRIGHTS off until MODE GREET: unasked descriptors fail in the sender, never reach the broker"
