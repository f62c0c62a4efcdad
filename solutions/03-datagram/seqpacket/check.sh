#!/usr/bin/env bash
# Exercise 4 of chapter 03: the service over SOCK_SEQPACKET (seqpacket_server.cpp,
# seqpacket_client.cpp). Boundaries kept on a connection, no framing, no return address; an empty
# message reads as 0, like end of file.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
mkdir -p "$WORK/bin"
build_cpp "$SOL_DIR/seqpacket_server.cpp" "$WORK/bin/seqpacket_server"
build_cpp "$SOL_DIR/seqpacket_client.cpp" "$WORK/bin/seqpacket_client"
server=$WORK/bin/seqpacket_server
client=$WORK/bin/seqpacket_client
sock=$(sock_path seqpacket)
start server "$server" -s "$sock"
wait_log server "listening on"

out=$("$client" -s "$sock" hello "你好 abc" $'two\nlines') || fail "the client failed: $out"
[ "$out" = $'HELLO\n你好 ABC\nTWO\nLINES' ] || fail "replies: $out"
ok "hello, 你好 abc, and 'two\\nlines' as ONE message -> one reply each (a newline is just a byte)"

python3 - "$sock" <<'PY' || fail "boundaries (see above)"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.settimeout(5)
s.send(b"first")
s.send(b"second")           # two messages sent before reading: still two replies
a, b = s.recv(65536), s.recv(65536)
assert (a, b) == (b"FIRST", b"SECOND"), (a, b)
s.send(b"a" * 4096)
assert s.recv(65536) == b"A" * 4096
s.send(b"a" * 5000)
r = s.recv(65536)
assert r == b"ERROR datagram too long (max 4096 bytes)", r[:60]
print("  ok: two messages sent back to back come back as two (one recv each); 4096 bytes served;")
print("      5000 bytes -> 'ERROR datagram too long (max 4096 bytes)' (MSG_TRUNC), never half of it")
PY

if out=$("$client" -s "$sock" hello "" world 2>&1); then fail "an empty message did not end the conversation: $out"; fi
grep -q "^HELLO$" <<<"$out" && grep -q "closed the connection after our empty message" <<<"$out" ||
    fail "empty message: $out"
wait_log server "recv returned 0 \(end of file, or an empty message\)"
ok "hello, '', world: HELLO, then the server took the empty message for end of file and closed"

out=$("$ROOT/03-datagram/client" -s "$sock" --timeout 1 hi 2>&1) && fail "chapter 03's datagram client was served: $out"
grep -q "Protocol wrong type for socket" <<<"$out" || fail "datagram client: $out"
ok "chapter 03's datagram client: connect says EPROTOTYPE (another type is bound there)"
echo "$CHAPTER/$NAME: SOCK_SEQPACKET keeps boundaries on a connection; an empty message reads as end of file"
