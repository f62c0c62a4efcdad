#!/usr/bin/env bash
# Exercise 1 of chapter 03: first the client without bind() (a copy of the chapter's, graded and
# run: the server cannot answer it), then this solution, SO_PASSCRED instead of bind(): Linux
# autobinds the socket and the reply arrives.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
use_solution client
broken=$WORK/nobind
copy_reference "$broken"
mutate "$broken/client.cpp" 's/int bound = bind\(sock\.get\(\), me\.sockaddr_ptr\(\), me\.length\(\)\);/int bound = 0;  \/\/ BROKEN ON PURPOSE: no bind()/'
echo "  graded (no bind): $(grade_dir "$broken")"
expect_fail Ch03ClientSteps.C2_Bind_AutobindGivesAFiveHexDigitName
expect_fail Ch03ClientSteps.C5_Recv_PrintsEachReplyDatagram

sock=$(sock_path server)
start server "$(ref_bin server)" -s "$sock"
wait_log server "bound to"
out=$("$(graded_bin client)" -s "$sock" --timeout 1 hello 2>&1) && fail "the unbound client got a reply: $out"
echo "        $out"
wait_log server "no reply: the sender has no address \(msg_namelen 0\)"
ok "no bind(): the client waits in vain; server: $(grep -o '(unnamed).*msg_namelen 0)' "$WORK/server.log" | head -n 1)"

out=$("$CLIENT" -s "$sock" -v hello 2>&1) || fail "the SO_PASSCRED client got no reply: $out"
name=$(grep -oE 'bound to @[0-9a-f]{5}' <<<"$out" | cut -c10-)
[ -n "$name" ] || fail "the SO_PASSCRED client has no autobound name: $out"
grep -q '^HELLO$' <<<"$out" || fail "no HELLO: $out"
wait_log server "from $name \(uid $(id -u)\): replied"
ok "SO_PASSCRED, no bind(): autobound as $name at connect(), HELLO; server: $(grep -o "from $name.*replied.*" "$WORK/server.log")"
echo "$CHAPTER/$NAME: an unbound datagram client cannot be answered; SO_PASSCRED makes Linux autobind it"
