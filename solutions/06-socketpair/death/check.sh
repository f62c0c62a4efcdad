#!/usr/bin/env bash
# Exercise 3 of chapter 06 (observation, the chapter's programs): kill -9 the worker, and the
# monitor reaps it and exits 137; kill -9 the monitor, and the waiting worker notices at once.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
server=$(ref_bin server)
cd "$WORK" || fail "cd"
worker_of() {  # the monitor's child, once it runs the worker program
    local limit=$(($(_now_ms) + 5000)) w
    while :; do
        w=$(pgrep -P "$1")
        [ -n "$w" ] && grep -q "holding descriptors" "$WORK/$2.log" && { echo "$w"; return; }
        [ "$(_now_ms)" -lt "$limit" ] || return 1
        sleep 0.02
    done
}
mkfifo in1 in2
START_STDIN=in1 start worker-killed "$server" -- -
monitor=$LAST_PID
exec 8>in1  # the worker's stdin stays open: it waits
worker=$(worker_of "$monitor" worker-killed) || fail "no worker"
kill -KILL "$worker"
wait_gone "$monitor"
wait "$monitor"
rc=$?
exec 8>&-
[ "$rc" = 137 ] || fail "the monitor exited $rc after its worker was killed, expected 137"
wait_log worker-killed "the worker was killed by SIGKILL \(9\)"
ok "kill -9 the worker: monitor logs '$(grep -o 'end of file: .*' "$WORK/worker-killed.log" | head -n 1)', then 'the worker was killed by SIGKILL (9)', exits 137 (128 + 9)"

START_STDIN=in2 start monitor-killed "$server" -- -
monitor=$LAST_PID
exec 8>in2
worker=$(worker_of "$monitor" monitor-killed) || fail "no worker"
kill9 "$monitor"
t0=$(_now_ms)
wait_log monitor-killed "client: end of file on descriptor 3: the monitor is gone" 5
took=$(($(_now_ms) - t0))
# It exits; until init reaps it (it is nobody's child now) it may show as a zombie.
limit=$(($(_now_ms) + 5000))
while state=$(awk '/^State:/ { print $2 }' "/proc/$worker/status" 2>/dev/null) && [ -n "$state" ] && [ "$state" != Z ]; do
    [ "$(_now_ms)" -lt "$limit" ] || fail "the worker still runs (state $state)"
    sleep 0.02
done
exec 8>&-
ok "kill -9 the monitor: the worker, waiting on stdin, says 'end of file on descriptor 3: the monitor is gone' within $took ms (it polls descriptor 3 too) and exits"
echo "$CHAPTER/$NAME: a dead worker is end of file for the monitor (exit 128+9); a dead monitor is end of file for the worker"
