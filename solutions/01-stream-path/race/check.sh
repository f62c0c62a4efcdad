#!/usr/bin/env bash
# Exercise 5 of chapter 01 (break it on purpose): two servers start on one stale socket file.
# With claim_path's flock, one of them always refuses; without it, both can say "listening on",
# the second having removed the first one's fresh socket file. The window (between the first
# server's bind and its listen) is microseconds wide, so a plain loop rarely hits it; strace can
# hold the first server's listen() for a while, which makes the race happen every time.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
broken=$WORK/nolock
copy_reference "$broken"
mutate "$broken/server.cpp" 's/if \(flock\(lock\.get\(\), LOCK_EX \| LOCK_NB\) == -1\)/if (false)  \/\/ BROKEN ON PURPOSE: no flock/'
echo "  graded: $(grade_dir "$broken")"
expect_fail Ch01Server.LockFileIsHeldWhileServingAndFreeAfterExit
nolock=$(graded_bin server)
reference=$(ref_bin server)

# 1. A hundred rounds each, two servers started at the same instant (race.py).
ref_both=$(python3 race.py "$reference" "$(sock_path loop)" 100) || fail "race.py (reference)"
nolock_both=$(python3 race.py "$nolock" "$(sock_path loop)" 100) || fail "race.py (no flock)"
[ "$ref_both" = 0 ] || fail "with the flock, both servers said listening on in $ref_both of 100 rounds"
ok "100 rounds, at the same instant: both listening in $ref_both with the flock, $nolock_both without"

# 2. The window held open: the first server's listen() waits 500 ms under strace.
command -v strace >/dev/null || skip "the loop above ran; strace is not installed to hold the window open"
race_held() {  # race_held LABEL SERVER: prints what the second server said
    local path first second
    path=$(sock_path "held-$1")
    python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$path"
    start "$1-first" strace -f -o /dev/null -e trace=listen -e inject=listen:delay_enter=500000 \
        "$2" -s "$path"
    first=$LAST_PID
    # The first server has bound once its socket file is back (it removed the stale one first).
    if [ "$1" = nolock ]; then
        wait_log "$1-first" "removed stale socket file"
        limit=$(($(_now_ms) + 5000))
        until [ -S "$path" ]; do [ "$(_now_ms)" -lt "$limit" ] || fail "no socket file"; sleep 0.005; done
    else
        wait_log "$1-first" "removed stale socket file"
    fi
    start "$1-second" "$2" -s "$path"
    second=$LAST_PID
    wait_log "$1-first" "listening on"
    if [ "$1" = nolock ]; then
        wait_log "$1-second" "listening on"
        n=$(ss -xlnH | awk -v p="$path" '$5 == p' | wc -l)
        [ "$n" = 2 ] || fail "ss -xl lists $n listeners on $path, expected 2"
        ok "without the flock: both say 'listening on'; ss -xl lists 2 listeners on one path, and a connect reaches only the second"
    else
        wait_gone "$second"
        wait "$second"
        echo "        second: $(tail -n 1 "$WORK/$1-second.log")"
        grep -q "another server is running or starting there" "$WORK/$1-second.log" ||
            fail "with the flock the second server did not refuse"
        ok "with the flock: the second server refuses at once (exit 1); the first serves"
    fi
    kill -TERM $(pgrep -P "$first") "$first" "$second" 2>/dev/null  # the server under strace too
}
race_held nolock "$nolock"
race_held reference "$reference"
echo "$CHAPTER/$NAME: without flock two servers share one path (every time with the window held open); with it, never"
