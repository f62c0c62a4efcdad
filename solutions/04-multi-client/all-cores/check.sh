#!/usr/bin/env bash
# Exercise 6 of chapter 04: the epoll model as N event loops (--loops N), one thread each, on the
# shared listener: loop 1 accepts and deals the connections out in turn. 200 clients through
# loadgen are spread evenly over the loops; requests/s with one loop and with one per core, side by
# side.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
use_solution server
loadgen=$(ref_bin loadgen)
cores=$(nproc)
loops=$((cores < 2 ? 2 : cores))
run() {  # run LABEL LOOPS: sets RATE (requests/s) and THREADS (the server's)
    local sock=$WORK/$1.sock out
    start "$1" "$SERVER" -s "$sock" --loops "$2"
    wait_log "$1" "listening on"
    out=$("$loadgen" -s "$sock" -c 200 -n 40000 2>&1) || fail "loadgen against $2 loop(s): $out"
    THREADS=$(ls "/proc/$LAST_PID/task" | wc -l)
    RATE=$(grep -o 'requests/s: [0-9]*' <<<"$out" | awk '{ print $2 }')
}
run one 1
one=$RATE
run many "$loops"
many=$RATE
[ "$THREADS" = $((loops + 1)) ] || fail "$loops loops: the server has $THREADS threads"
per_loop=""
for i in $(seq "$loops"); do
    n=$(grep -c "loop $i: client [0-9]* connected" "$WORK/many.log")
    [ "$n" -gt 0 ] || fail "loop $i accepted no client"
    per_loop+="${per_loop:+, }loop $i: $n"
done
ok "$loops loops ($THREADS threads: main + one per loop), 200 clients spread: $per_loop"
ok "requests/s: 1 loop $one, $loops loops $many (on $cores cores, loadgen itself needs one)"
echo "$CHAPTER/$NAME: one event loop per core, connections dealt out in turn: the loops share the work evenly"
