#!/usr/bin/env bash
# Exercise 5 of chapter 06: one monitor, two workers, two pairs, poll(). Worker 2 waits for its
# stdin while worker 1 is served to the end; end of file on one reaps only that one.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
use_solution server client
cd "$WORK" || fail "cd"
files=$ROOT/$CHAPTER/files
mkfifo requests
START_STDIN=requests start pair "$SERVER" --root "$files" --worker "$CLIENT" -- hello.txt -- -
server=$LAST_PID
exec 9>requests  # worker 2's stdin (it inherits the monitor's): open, nothing written yet
wait_log pair "worker 1 exited with status 0 after 1 request\(s\)"
kill -0 "$server" 2>/dev/null || fail "the monitor ended with worker 1"
grep -q "worker 2 exited" "$WORK/pair.log" && fail "worker 2 ended before it had a request"
ok "worker 1 asked for hello.txt and was reaped while worker 2 still waits for its stdin"
echo docs/notes.txt >&9
exec 9>&-
wait_gone "$server"
wait "$server"
rc=$?
[ "$rc" = 0 ] || fail "the monitor exited $rc"
grep -q "Hello from the monitor" "$WORK/pair.log" && grep -q "A socket pair has no name" "$WORK/pair.log" ||
    fail "the two files were not both printed"
wait_log pair "worker 2 exited with status 0 after 1 request\(s\)"
ok "then worker 2 got docs/notes.txt; both reaped; the monitor exits 0"

"$SERVER" --root "$files" --worker "$CLIENT" -- hello.txt -- nope >/dev/null 2>&1 </dev/null
rc=$?
[ "$rc" = 1 ] || fail "a refused file in worker 2: the monitor exited $rc, expected 1"
ok "worker 2 refused a file (exit 1): the monitor exits with the worst status, 1"

mkfifo idle
START_STDIN=idle start stop "$SERVER" --root "$files" --worker "$CLIENT" -- - -- -
server=$LAST_PID
exec 9>idle
wait_log stop "starting worker 2"
limit=$(($(_now_ms) + 5000))
until [ "$(pgrep -P "$server" | wc -l)" = 2 ]; do
    [ "$(_now_ms)" -lt "$limit" ] || fail "the two workers did not start"
    sleep 0.02
done
workers=$(pgrep -P "$server" | tr '\n' ' ')
kill -TERM "$server"
wait_gone "$server"
exec 9>&-
for w in $workers; do kill -0 "$w" 2>/dev/null && fail "worker $w outlived its monitor"; done
wait_log stop "passing it on to the workers"
ok "SIGTERM to the monitor: passed on to both workers, both gone"

# One worker: the chapter's monitor, line for line (pids and descriptor numbers aside).
norm() { sed -E 's/[0-9]+/N/g' "$1"; }
"$(ref_bin server)" --root "$files" --worker "$CLIENT" -- hello.txt >/dev/null 2>reference.log </dev/null
"$SERVER" --root "$files" --worker "$CLIENT" -- hello.txt >/dev/null 2>solution.log </dev/null
diff <(norm reference.log) <(norm solution.log) >/dev/null || {
    diff <(norm reference.log) <(norm solution.log) | head
    fail "with one worker the log differs from the chapter's"
}
ok "with one worker, the log is the chapter's monitor's, line for line"
echo "$CHAPTER/$NAME: two workers, one poll loop: neither waits for the other; the worst status wins"
