#!/usr/bin/env bash
# Exercise 4 of chapter 06: the worker keeps up to 4 requests in flight. monitor.py plays the
# monitor and answers one request at a time: the worker sends 4 before the first reply, never
# more, half-closes right after its last request, and matches replies to requests in order.
# Then the chapter's monitor runs it: the output is the chapter's.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
use_solution client
out=$(timeout 30 python3 monitor.py "$CLIENT" a b c d e f 2>&1) || { echo "$out"; fail "monitor.py"; }
echo "$out"
ok "monitor.py: a window of 4, the half-close right after the last request, replies in order"
out=$(timeout 30 python3 monitor.py "$(ref_bin client)" a b c d e f 2>&1) && fail "the chapter's worker pipelined?"
ok "the chapter's worker, for comparison: $(grep -o 'before any reply: [0-9]* requests in flight' <<<"$out")"

server=$(ref_bin server)
want=$("$server" -- hello.txt docs/notes.txt hello.txt 2>/dev/null) || fail "the chapter's pair failed"
got=$("$server" --worker "$CLIENT" -- hello.txt docs/notes.txt hello.txt 2>"$WORK/pair.log") ||
    fail "the chapter's monitor with this worker: $(tail -n 3 "$WORK/pair.log")"
[ "$got" = "$want" ] || fail "with the chapter's monitor the output differs from the chapter's worker's"
ok "the chapter's monitor with this worker: the same $(wc -c <<<"$got") bytes as the chapter's worker"
got=$(printf 'hello.txt\nLIST\n' | "$server" --worker "$CLIENT" -- - 2>"$WORK/stdin.log") ||
    fail "requests from stdin: $(tail -n 3 "$WORK/stdin.log")"
grep -q "hello.txt" <<<"$got" && grep -q "sealed memfd" "$WORK/stdin.log" || fail "requests from stdin: $got"
ok "requests from stdin (the worker never waits for stdin while a reply is due)"
got=$(printf '/etc/passwd\n../x\nfifo\ndocs\nnope\nhello.txt\n' | "$server" --worker "$CLIENT" -- - 2>"$WORK/attacks.log")
[ "$got" = "$("$server" -- hello.txt 2>/dev/null)" ] || fail "six requests piped at once: the output is not hello.txt alone"
[ "$(grep -c 'refused by the monitor' "$WORK/attacks.log")" = 5 ] || fail "six requests piped at once: not five refusals"
ok "six requests piped at once, five refused: each refusal and the one file, in order"
echo "$CHAPTER/$NAME: up to 4 requests in flight, never more; half-close after the last; replies in order"
