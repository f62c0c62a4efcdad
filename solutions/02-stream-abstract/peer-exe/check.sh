#!/usr/bin/env bash
# Exercise 5 of chapter 02: the server logs each peer's program, read through SO_PEERPIDFD, and
# never names the wrong one. reuse.py makes the race happen: the peer exits before the server
# accepts it, and (as root, in a new PID namespace) its pid goes to `sleep` first.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
use_solution server client
name=uds-exe-$$
start server "$SERVER" -s "@$name"
wait_log server "listening on"
"$CLIENT" -s "@$name" hi >/dev/null || fail "the client was not served"
wait_log server "uid=$(id -u) gid=$(id -g) exe=$CLIENT;"
ok "a live peer: exe=$CLIENT"
python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect("\0" + sys.argv[1]); s.sendall(b"x\n"); s.recv(9)' "$name"
py=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
wait_log server "exe=$py;"
ok "python3: exe=$py"

out=$(timeout 30 python3 reuse.py "$SERVER") || fail "reuse.py: $out"
grep -q "exe=? (the peer has exited)" <<<"$out" || fail "an exited peer: $out"
ok "a peer that exited before accept: exe=? (the peer has exited)"
out=$(timeout 30 python3 reuse.py "$SERVER" --exe-by-pid) || fail "reuse.py: $out"
ok "the same with --exe-by-pid: $(grep -o 'exe=[^;]*' <<<"$out")"

is_root || skip "the pidfd answer is right; making a pid be reused at once takes root (a new PID namespace)"
run_reuse() { timeout 30 unshare --pid --fork --mount-proc python3 reuse.py --reuse-pid "$SERVER" "$@"; }
out=$(run_reuse --exe-by-pid) || fail "reuse.py --reuse-pid: $out"
grep -q "exe=/[^ ]*sleep (by pid, unchecked)" <<<"$out" || fail "by pid, expected sleep's path: $out"
ok "pid reused, read by pid: $(grep -o 'peer pid=[0-9]* .*exe=[^;]*' <<<"$out") -- the wrong program"
out=$(run_reuse) || fail "reuse.py --reuse-pid: $out"
grep -q "exe=? (the peer has exited)" <<<"$out" || fail "with the pidfd: $out"
ok "pid reused, read through the pidfd: $(grep -o 'exe=[^;]*' <<<"$out")"
echo "$CHAPTER/$NAME: the peer's program through SO_PEERPIDFD; a reused pid names sleep, the pidfd knows better"
