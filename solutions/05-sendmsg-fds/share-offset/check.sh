#!/usr/bin/env bash
# Exercise 3 of chapter 05: SHARE passes the same open file to every client. Two clients that
# read 10 bytes each see consecutive parts of the file (one offset); with OPEN each sees the
# start. Then the client: `client --share` twice prints the file once, then nothing.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
use_solution server client
sock=$(sock_path share)
start server "$SERVER" -s "$sock" --root "$ROOT/$CHAPTER/files"
wait_log server "serving files beneath"
python3 - "$sock" <<'PY' || fail "the two readers (see above)"
import array, os, socket, sys
def ask(verb, path):
    """One connection, one request; returns the received descriptor."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(f"{verb} {path}\n".encode())
    fds = array.array("i")
    msg, anc, _, _ = s.recvmsg(100, socket.CMSG_SPACE(4 * fds.itemsize))
    assert msg.startswith(b"OK "), msg
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    s.close()
    return fds[0]
a, b = ask("SHARE", "hello.txt"), ask("SHARE", "hello.txt")
ra, rb = os.read(a, 10), os.read(b, 10)
print(f"  SHARE: client A reads {ra!r}, then client B reads {rb!r}")
assert ra != rb and rb, "B should continue where A stopped"
print(f"  ok: one offset: B's read starts at byte 10, where A's stopped (lseek says {os.lseek(b, 0, os.SEEK_CUR)})")
c, d = ask("OPEN", "hello.txt"), ask("OPEN", "hello.txt")
rc, rd = os.read(c, 10), os.read(d, 10)
assert rc == rd == ra, (rc, rd)
print(f"  ok: OPEN: each reads {rc!r}: a fresh open file (and offset) per request")
PY
first=$("$CLIENT" -s "$sock" --share docs/notes.txt 2>/dev/null) || fail "client --share failed"
second=$("$CLIENT" -s "$sock" --share docs/notes.txt 2>"$WORK/second.err") || fail "client --share (2) failed"
[ -n "$first" ] && [ -z "$second" ] || fail "client --share twice: '$first' then '$second'"
ok "client --share docs/notes.txt, twice: the whole file, then nothing ($(grep -o 'read 0 bytes.*' "$WORK/second.err"))"
echo "$CHAPTER/$NAME: a passed descriptor shares its open file, offset included; OPEN opens anew for that reason"
