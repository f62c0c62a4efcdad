#!/usr/bin/env bash
# Exercise 4 of chapter 01: a peer of another uid gets "ERROR not allowed" and is closed at once;
# our own uid is still served. The other uid is 65534 (nobody), which takes root to become.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
use_solution server client
server=$SERVER
client=$CLIENT
sock=$(sock_path same-uid)

start server "$server" -s "$sock"
wait_log server "listening on"
out=$("$client" -s "$sock" hello) || fail "our own uid was not served"
[ "$out" = HELLO ] || fail "our own uid got '$out'"
ok "uid $(id -u) (ours) is served: HELLO"

is_root || skip "served our own uid; showing a refusal needs a second user (run as root)"
# The file's mode would refuse nobody already (connect needs write permission): open it up, so
# that the server's own check is what refuses.
chmod 0777 "$sock"
cp "$client" "$WORK/client" && chmod 0755 "$WORK/client"
t0=$(_now_ms)
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$WORK/client" -s "$sock" hello 2>&1)
took=$(($(_now_ms) - t0))
[ "$out" = "ERROR not allowed" ] || fail "uid 65534 got '$out', expected ERROR not allowed"
ok "uid 65534 gets 'ERROR not allowed' in $took ms (the server does not wait for it)"
wait_log server "refused a connection: peer uid=65534 is not ours \(0\)"
ok "server log: refused a connection: peer uid=65534 is not ours (0)"
python3 - "$sock" <<'PY' || fail "a refused peer holding its connection open delayed our own client"
import socket, subprocess, sys, time
# Ten refused peers that read the refusal and then never leave; then our own client.
peer = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n"
        "print(s.recv(100).decode().strip(), flush=True)\n"
        "sys.stdin.read()")
peers = [subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-c", peer, sys.argv[1]],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
         for _ in range(10)]
for p in peers:
    line = p.stdout.readline().strip()
    assert line == "ERROR not allowed", line
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
t0 = time.monotonic()
s.connect(sys.argv[1])
s.sendall(b"still me\n")
got = b""
while not got.endswith(b"\n"):
    b = s.recv(100)
    assert b, "closed"
    got += b
assert got == b"STILL ME\n", got
print(f"  ok: 10 refused peers keep their connections open; ours is served in "
      f"{1000 * (time.monotonic() - t0):.1f} ms")
for p in peers:
    p.stdin.close()
    p.wait(5)
PY
echo "$CHAPTER/$NAME: our own uid served, uid 65534 refused at once with ERROR not allowed"
