#!/usr/bin/env bash
# Exercise 5 of chapter 03: a client connected to the server that never reads its replies. The
# chapter's server lets its replies fill the shared send buffer, and then nobody gets a reply;
# this one stops replying to that client after Fairness::kMaxHeld unread replies.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
use_solution server
client=$(ref_bin client)

scene() {  # scene LABEL SERVER: a hog of 500 requests, then an ordinary client
    local sock
    sock=$(sock_path "$1")
    start "$1" "$2" -s "$sock"
    wait_log "$1" "bound to"
    mkfifo "$WORK/$1.in"
    python3 hog.py "$sock" 500 <"$WORK/$1.in" >"$WORK/$1-hog.log" 2>&1 &
    _pids+=($!)
    exec 9>"$WORK/$1.in"  # the hog's stdin, held open until we say "drain"
    wait_log "$1-hog" "sent 500"
    SENDQ=$(ss -xanH | awk -v p="$sock" '$5 == p { print $4 }')
    OUT=$("$client" -s "$sock" --timeout 1 "are you there" 2>&1)
}

scene reference "$(ref_bin server)"
exec 9>&-
grep -q "no reply within 1 s" <<<"$OUT" || fail "the chapter's server answered despite the hog: $OUT"
wait_log reference "no room"
ok "chapter's server: the hog's unread replies fill its send buffer (Send-Q $SENDQ bytes); an ordinary client gets no reply ('no room')"

scene solution "$SERVER"
[ "$OUT" = "ARE YOU THERE" ] || fail "with the hog connected, an ordinary client got: $OUT"
wait_log solution "holds 32 unread replies .*: none until it reads"
ok "this server: the hog is cut off at 32 unread replies (Send-Q $SENDQ bytes); the ordinary client is answered"
echo drain >&9
exec 9>&-
wait_log solution-hog "served again"
ok "the hog reads its queue ($(grep -o 'read [0-9]* replies' "$WORK/solution-hog.log")), then is served again"
echo "$CHAPTER/$NAME: a connected client that never reads is cut off at 32 unread replies instead of starving everyone"
