#!/usr/bin/env bash
# Exercise 1 of chapter 05 (observation, the chapter's programs): the number the server sent and
# the one the client received for each file, and the two descriptor tables they come from.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
sock=$(sock_path broker)
start server clean_exec "$(ref_bin server)" -s "$sock"
wait_log server "serving files beneath"
server=$LAST_PID
echo "  the server's table before any client:"
ls -l "/proc/$server/fd" | tail -n +2 | sort -k9 -n | awk '{ print "        " $9, $10, $11 }'
"$(ref_bin client)" -s "$sock" hello.txt docs/notes.txt >/dev/null 2>"$WORK/client.log" ||
    fail "the client failed: $(cat "$WORK/client.log")"
wait_log server "OPEN docs/notes.txt: sent descriptor"
for f in hello.txt docs/notes.txt; do
    sent=$(grep -o "OPEN $f: sent descriptor [0-9]*" "$WORK/server.log" | awk '{ print $NF }')
    got=$(grep -o "$f: received descriptor [0-9]*" "$WORK/client.log" | awk '{ print $NF }')
    [ -n "$sent" ] && [ -n "$got" ] || fail "$f: no numbers in the logs"
    ok "$f: the server sent its descriptor $sent, the client received it as $got"
    [ "$got" = 4 ] || fail "$f: the client's lowest free number is 4 (0-2 stdio, 3 its socket), it got $got"
done
ok "the client got 4 both times: 0-2 are stdio, 3 its socket, and C6 closed the first file before the second"
echo "$CHAPTER/$NAME: each process gets its own lowest free number; the open file behind them is the same"
