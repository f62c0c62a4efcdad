#!/usr/bin/env bash
# Exercise 3 of chapter 01: with --len the server answers "LEN n"; 4096 bytes fit, 4097 do not.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
use_solution server client
server=$SERVER
client=$CLIENT
sock=$(sock_path len)

start server "$server" -s "$sock" --len
wait_log server "listening on"

out=$("$client" -s "$sock" hello "你好 abc" "")
[ "$out" = $'LEN 5\nLEN 10\nLEN 0' ] || fail "client got '$out', expected LEN 5, LEN 10 (bytes, not characters), LEN 0"
ok "hello -> LEN 5; 你好 abc -> LEN 10 (UTF-8 bytes); an empty line -> LEN 0"

python3 - "$sock" <<'PY' || fail "the 4096/4097-byte lines (see above)"
import socket, sys
def ask(payload):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sys.argv[1])
    s.sendall(payload)
    if not payload.endswith(b"\n"):
        s.shutdown(socket.SHUT_WR)  # the last line has no '\n': end of file ends it
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            return got
        got += b
        if payload.endswith(b"\n") and got.count(b"\n") == payload.count(b"\n") and b"ERROR" not in got:
            s.close()
            return got
r = ask(b"a" * 4096 + b"\n")
assert r == b"LEN 4096\n", r
print("  ok: 4096 bytes and '\\n' -> LEN 4096")
r = ask(b"a" * 4097 + b"\n")
assert r == b"ERROR line too long (max 4096 bytes)\n", r[:80]
print("  ok: 4097 bytes -> ERROR line too long (max 4096 bytes), then end of file")
r = ask(b"one\ntwo three\nfour")  # the last line has no '\n': answered at end of file
assert r == b"LEN 3\nLEN 9\nLEN 4\n", r
print("  ok: three lines in one write, the last without '\\n' -> LEN 3, LEN 9, LEN 4")
PY
kill -TERM "$LAST_PID"; wait "$LAST_PID" 2>/dev/null

start plain "$server" -s "$sock"
wait_log plain "listening on"
out=$("$client" -s "$sock" hello)
[ "$out" = HELLO ] || fail "without --len the reply to hello was '$out'"
ok "without --len: HELLO (the chapter's contract)"
echo "$CHAPTER/$NAME: LEN n for every line, the 4096-byte limit unchanged"
