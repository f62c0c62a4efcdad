#!/usr/bin/env bash
# Exercise 5 of chapter 04: --model prefork, 4 workers forked once, accepting on one listener.
# 40 clients, one after the other, for each way of waiting; each worker logs how many clients it
# served and how often it woke with nothing to accept.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
use_solution server
client=$(ref_bin client)
scene() {  # scene WAKE: prints "served-per-worker wasted-total"
    local sock=$WORK/$1.sock
    start "$1" "$SERVER" -s "$sock" --model prefork --workers 4 --wake "$1"
    wait_log "$1" "listening on"
    local server=$LAST_PID i
    for i in $(seq 40); do
        [ "$("$client" -s "$sock" "hello $i")" = "HELLO $i" ] || fail "$1: client $i was not served"
    done
    kill -TERM "$server"
    wait_gone "$server"
    [ "$(grep -c 'served [0-9]* clients' "$WORK/$1.log")" = 4 ] || fail "$1: not every worker reported"
    echo "$(grep -o 'served [0-9]*' "$WORK/$1.log" | awk '{ printf "%s%s", sep, $2; sep = "+" }') $(grep -o 'woke [0-9]*' "$WORK/$1.log" | awk '{ s += $2 } END { print s }')"
}
read -r served wasted < <(scene accept)
[ "$wasted" = 0 ] || fail "accept: $wasted useless wake-ups"
for n in ${served//+/ }; do [ "$n" -gt 0 ] || fail "accept: a worker served no client ($served)"; done
ok "--wake accept: clients per worker $served, 0 wake-ups for nothing (the kernel wakes one waiter, in turn)"
read -r served wasted_epoll < <(scene epoll)
ok "--wake epoll: clients per worker $served, $wasted_epoll wake-ups for nothing (every epoll set is woken: the herd)"
read -r served wasted_excl < <(scene epoll-exclusive)
ok "--wake epoll-exclusive: clients per worker $served, $wasted_excl wake-ups for nothing (one waiter woken; often the same one)"
[ "$wasted_epoll" -gt "$wasted_excl" ] || fail "EPOLLEXCLUSIVE woke as often for nothing ($wasted_excl) as plain epoll ($wasted_epoll)"

start parallel "$SERVER" -s "$WORK/parallel.sock" --model prefork --workers 4
wait_log parallel "listening on"
seq 60 | xargs -P 8 -I{} "$client" -s "$WORK/parallel.sock" "client {}" >"$WORK/parallel.out" ||
    fail "8 clients at a time: some failed"
[ "$(wc -l <"$WORK/parallel.out")" = 60 ] || fail "8 at a time: $(wc -l <"$WORK/parallel.out") replies of 60"
ok "60 clients, 8 at a time, 4 workers: all 60 answered (the rest wait in the listen queue)"
echo "$CHAPTER/$NAME: blocking accept4 hands connections out in turn; a shared listener in epoll wakes the herd unless EPOLLEXCLUSIVE"
