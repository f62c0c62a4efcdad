#!/usr/bin/env bash
# Exercise 4 of chapter 07: the client trusts a server of another uid when its gid is a group we
# are in (--server-gid). The server runs as uid 65534 with our gid, which takes root (setpriv).
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
use_solution client
server=$(ref_bin server)
mygid=$(id -g)
out=$("$CLIENT" -s @x --server-gid 4242424 hi 2>&1)
[ $? = 2 ] || fail "--server-gid of a group we are not in: expected a usage error (exit 2): $out"
ok "--server-gid of a group we are not in: usage error, exit 2 ($(grep -o 'you are not in that group' <<<"$out"))"
is_root || skip "checked the option; a server of another uid takes root to start (setpriv)"

name=uds-gid-$$
cp "$server" "$WORK/server" && chmod 0755 "$WORK/server"
start server setpriv --reuid=65534 --regid="$mygid" --clear-groups "$WORK/server" -s "@$name"
wait_log server "listening on"
out=$("$CLIENT" -s "@$name" hi 2>&1) && fail "a server of uid 65534 was trusted without --server-gid: $out"
grep -q "is held by uid 65534" <<<"$out" || fail "the refusal: $out"
ok "server uid 65534, gid $mygid, no --server-gid: refused, not a byte sent"
out=$("$CLIENT" -s "@$name" --server-gid "$mygid" -v hi 2>&1) || fail "with --server-gid $mygid: $out"
grep -q "^HI$" <<<"$out" || fail "with --server-gid $mygid: $out"
ok "with --server-gid $mygid: served ($(grep -o 'the listener is pid [0-9]* uid 65534 gid [0-9]*' <<<"$out"))"
out=$("$(ref_bin client)" -s "@$name" hi 2>&1) && fail "the chapter's client trusted uid 65534"
ok "the chapter's client refuses it: '$(grep -o 'is held by uid 65534[^:]*' <<<"$out")'"
echo "$CHAPTER/$NAME: a server of another uid is trusted by its gid only with --server-gid, only for our own groups"
