#!/usr/bin/env bash
# Exercise 1 of chapter 02 (break it on purpose): sizeof(struct sockaddr_un) as the length of an
# abstract name, first in the client, then in the server too.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
broken=$WORK/sizeof
copy_reference "$broken"
edit='s/(sa_len = )static_cast<socklen_t>\(offsetof\(sockaddr_un, sun_path\) \+ 1 \+ name\.size\(\)\);/${1}sizeof sa;  \/\/ BROKEN ON PURPOSE: sizeof as an abstract name\x27s length/'
mutate "$broken/client.cpp" "$edit"
mutate "$broken/server.cpp" "$edit"
echo "  graded (server and client with sizeof): $(grade_dir "$broken")"
expect_fail Ch02Steps.S2a_Name_TheKernelGotExactlyAtName
expect_fail Ch02ClientSteps.C2_Connect_ReachesTheExactName
bad_server=$(graded_bin server)
bad_client=$(graded_bin client)
name=uds-sizeof-$$

# 1. The client alone: the reference server holds @name, exactly.
start good "$(ref_bin server)" -s "@$name"
wait_log good "listening on"
if out=$("$bad_client" -s "@$name" hello 2>&1); then fail "the sizeof client was served: $out"; fi
echo "        $out"
grep -q "Connection refused" <<<"$out" || fail "expected ECONNREFUSED, got: $out"
ok "the client with sizeof gets ECONNREFUSED from a server bound with the exact length"

# 2. The server with sizeof too: the two agree, and both names exist at once.
start bad "$bad_server" -s "@$name"
wait_log bad "listening on"
out=$("$bad_client" -s "@$name" hello) || fail "the sizeof pair does not work together"
[ "$out" = HELLO ] || fail "the sizeof pair: '$out'"
ok "server and client both with sizeof: HELLO (they agree on the padded name)"
out=$("$(ref_bin client)" -s "@$name" hello) || fail "the exact client lost its server"
[ "$out" = HELLO ] || fail "exact pair: '$out'"
ok "the exact server on @$name runs at the same time, and the exact client still reaches it"
padded=$(grep -oE "@$name@+\$" /proc/net/unix | head -n 1)
grep -qE "@$name\$" /proc/net/unix || fail "/proc/net/unix does not list @$name"
[ -n "$padded" ] || fail "/proc/net/unix does not list the padded name"
ok "/proc/net/unix lists @$name and @$name plus $((${#padded} - ${#name} - 1)) @s (NULs): ${#padded} characters, all of sun_path"
echo "$CHAPTER/$NAME: sizeof pads the name with NULs: ECONNREFUSED for exact peers, a second name beside the first"
