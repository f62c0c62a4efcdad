#!/usr/bin/env bash
# Exercise 4 of chapter 05: SNAPSHOT passes a sealed memfd copy of a file. The copy has all four
# seals, cannot be written or truncated even by its holder, and does not change when the file
# does. The client maps it only after F_GET_SEALS; a server that forgets the seals is refused.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
use_solution server client
cp -r "$ROOT/$CHAPTER/files" "$WORK/root"
sock=$(sock_path snapshot)
start server "$SERVER" -s "$sock" --root "$WORK/root"
wait_log server "serving files beneath"
python3 - "$sock" "$WORK/root/hello.txt" <<'PY' || fail "the snapshot (see above)"
import array, fcntl, os, socket, sys
sock, original = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.connect(sock)
s.sendall(b"SNAPSHOT hello.txt\n")
fds = array.array("i")
msg, anc, _, _ = s.recvmsg(100, socket.CMSG_SPACE(4))
fds.frombytes(anc[0][2][:4])
fd = fds[0]
seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
want = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
assert seals == want, hex(seals)
print(f"  ok: {msg.decode().strip()} with {os.readlink(f'/proc/self/fd/{fd}')}: seals shrink, grow, write, seal")
before = os.pread(fd, 4096, 0)
for what, attempt in (("write", lambda: os.pwrite(fd, b"X", 0)), ("ftruncate", lambda: os.ftruncate(fd, 0))):
    try:
        attempt()
        sys.exit(f"{what} on the snapshot worked")
    except PermissionError:
        pass
print("  ok: write and ftruncate on it: Operation not permitted (even for us, holding it)")
with open(original, "ab") as f:
    f.write(b"a line added after the snapshot\n")
assert os.pread(fd, 4096, 0) == before
print(f"  ok: the file grew after the snapshot; the snapshot did not ({len(before)} bytes)")
PY
out=$("$CLIENT" -s "$sock" --snapshot hello.txt 2>"$WORK/client.err") || fail "client --snapshot: $(cat "$WORK/client.err")"
grep -q "a line added after the snapshot" <<<"$out" || fail "client --snapshot printed an old copy"
ok "client --snapshot hello.txt: $(grep -o 'a sealed snapshot of [0-9]* bytes' "$WORK/client.err"), mapped and printed"

unsealed=$WORK/unsealed
mkdir -p "$unsealed"
cp server.cpp "$unsealed/"
mutate "$unsealed/server.cpp" 's/uds::check\(\s*fcntl\(copy\.get\(\), F_ADD_SEALS,.*?"fcntl F_ADD_SEALS"\);/\/\/ BROKEN ON PURPOSE: no seals/s'
build_cpp "$unsealed/server.cpp" "$WORK/server-unsealed" -I"$unsealed"
start unsealed "$WORK/server-unsealed" -s "$(sock_path unsealed)" --root "$WORK/root"
wait_log unsealed "serving files beneath"
"$CLIENT" -s "$(sock_path unsealed)" --snapshot hello.txt >"$WORK/out" 2>"$WORK/client.err" &&
    fail "the client accepted an unsealed snapshot"
grep -q "the server sent an unsealed snapshot: refusing to read it" "$WORK/client.err" || fail "$(cat "$WORK/client.err")"
[ -s "$WORK/out" ] && fail "the client printed an unsealed snapshot"
ok "a server without the seals: 'the server sent an unsealed snapshot: refusing to read it', exit 1, nothing printed"
echo "$CHAPTER/$NAME: a sealed memfd is a snapshot nobody can change; the client trusts it only after F_GET_SEALS"
