#!/usr/bin/env bash
# Exercise 2 of chapter 04 (break it on purpose): the thread model out of descriptors
# (prlimit --nofile=32), 40 clients. With the spare descriptor, the clients it cannot serve are
# told 'ERROR server busy' and the server idles. Without the spare, the Acceptor falls back to
# pausing: no spin, but those clients get no answer at all. Without the pause too, accept4 fails
# at once for ever on a readable listener: 100% CPU.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
command -v prlimit >/dev/null || skip "prlimit is not installed (util-linux)"
nospare=$WORK/nospare
copy_reference "$nospare"
mutate "$nospare/serve.hpp" 's/void reopen_spare\(\) \{ spare_\.reset\(open\("\/dev\/null", O_RDONLY \| O_CLOEXEC\)\); \}/void reopen_spare() { spare_.reset(); }  \/\/ BROKEN ON PURPOSE: no spare/'
echo "  graded (no spare): $(grade_dir "$nospare")"
grep -A1 "^  FAIL" "$WORK/grade.txt" | sed 's/^/    /' | head -8
cp "$(graded_bin server)" "$WORK/server-nospare"
spin=$WORK/spin
copy_reference "$spin"
mutate "$spin/serve.hpp" 's/void reopen_spare\(\) \{ spare_\.reset\(open\("\/dev\/null", O_RDONLY \| O_CLOEXEC\)\); \}/void reopen_spare() { spare_.reset(); }  \/\/ BROKEN ON PURPOSE: no spare/'
mutate "$spin/serve.hpp" 's/paused_ = paused_before_ = true;/paused_before_ = true;  \/\/ BROKEN ON PURPOSE: no pause either/'
mkdir -p "$WORK/bin"
build_cpp "$spin/server.cpp" "$WORK/server-spin" -I"$spin"

cpu_percent() {  # CPU % of a process over one second
    local t0 t1
    t0=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
    sleep 1
    t1=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
    echo $(((t1 - t0) * 100 / $(getconf CLK_TCK)))
}
scene() {  # scene LABEL SERVER: prints "served busy unanswered cpu%"
    local sock=$WORK/$1.sock
    start "$1" "$2" -s "$sock" --model thread
    wait_log "$1" "listening on"
    local server=$LAST_PID
    prlimit --nofile=32 --pid "$server"
    mkfifo "$WORK/$1.hold"
    python3 crowd.py "$sock" 40 <"$WORK/$1.hold" >"$WORK/$1.crowd" &
    _pids+=($!)
    exec 9>"$WORK/$1.hold"
    local limit=$(($(_now_ms) + 15000))
    until [ -s "$WORK/$1.crowd" ]; do
        [ "$(_now_ms)" -lt "$limit" ] || fail "$1: the crowd did not report"
        sleep 0.05
    done
    echo "$(cat "$WORK/$1.crowd") $(cpu_percent "$server")"
    exec 9>&-
}
read -r served busy none cpu < <(scene reference "$(ref_bin server)")
[ "$busy" -gt 0 ] && [ "$none" = 0 ] && [ "$cpu" -lt 50 ] || fail "reference: $served served, $busy busy, $none unanswered, $cpu% CPU"
ok "with the spare: $served served, $busy told 'ERROR server busy', 0 unanswered; server CPU $cpu%"
read -r served busy none cpu < <(scene nospare "$WORK/server-nospare")
[ "$busy" = 0 ] && [ "$none" -gt 0 ] || fail "no spare: $served served, $busy busy, $none unanswered, $cpu% CPU"
wait_log nospare "pausing accept"
ok "no spare: $served served, $none get no answer at all (queued until a descriptor frees); CPU $cpu% (the pause)"
read -r served busy none cpu < <(scene spin "$WORK/server-spin")
[ "$cpu" -ge 50 ] || fail "no spare, no pause: only $cpu% CPU"
ok "no spare and no pause: $served served, $none unanswered, and the server spins at $cpu% CPU"
echo "$CHAPTER/$NAME: the spare turns the excess away at once; without it clients hang, and without the pause the server spins"
