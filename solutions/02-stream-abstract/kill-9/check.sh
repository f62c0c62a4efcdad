#!/usr/bin/env bash
# Exercise 2 of chapter 02 (observation, the chapter's own programs): a second server on a name
# in use exits 1; after kill -9 of the first, the name is free at once. Chapter 01's server, on a
# path, leaves a stale socket file behind instead.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
make -s --no-print-directory -C "$ROOT" build-01 >/dev/null || fail "make build-01 failed"
server=$(ref_bin server)
name=uds-kill9-$$

start first "$server" -s "@$name"
first=$LAST_PID
wait_log first "listening on"
start second "$server" -s "@$name"
wait_gone "$LAST_PID"
wait "$LAST_PID"
rc=$?
[ "$rc" = 1 ] || fail "the second server exited $rc, expected 1"
echo "        $(tail -n 1 "$WORK/second.log" | cut -c1-150)..."
grep -q "Address already in use" "$WORK/second.log" || fail "no EADDRINUSE from the second server"
ok "a second server on @$name: exit 1, Address already in use (nothing is stale, so nothing to remove)"

kill9 "$first"
grep -q "@$name\$" /proc/net/unix && fail "@$name is still in /proc/net/unix after kill -9"
ok "kill -9 of the first: @$name is gone from /proc/net/unix at once"
start third "$server" -s "@$name"
wait_log third "listening on"
grep -q "removed stale" "$WORK/third.log" && fail "the third server found something stale"
ok "the next server starts at once, nothing to clean up"

# Chapter 01, for comparison: a path outlives a server killed by SIGKILL.
path=$(sock_path ch01)
start ch01 "$ROOT/01-stream-path/server" -s "$path"
wait_log ch01 "listening on"
kill9 "$LAST_PID"
[ -S "$path" ] || fail "chapter 01's socket file vanished with its server"
out=$("$ROOT/01-stream-path/client" -s "$path" hi 2>&1) && fail "a client reached a dead server"
grep -q "Connection refused" <<<"$out" || fail "chapter 01's client: $out"
ok "chapter 01 after kill -9: the file stays (ls shows it), connect says Connection refused"
start ch01-again "$ROOT/01-stream-path/server" -s "$path"
wait_log ch01-again "listening on"
grep -q "removed stale socket file" "$WORK/ch01-again.log" || fail "chapter 01 did not remove the stale file"
ok "chapter 01's next server: removed stale socket file, then listening"
echo "$CHAPTER/$NAME: an abstract name dies with its socket (even on SIGKILL); a path leaves a stale file"
