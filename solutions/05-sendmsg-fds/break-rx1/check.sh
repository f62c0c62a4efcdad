#!/usr/bin/env bash
# Exercise 2 of chapter 05 (break it on purpose): rx1's control buffer sized with CMSG_LEN
# instead of CMSG_SPACE. The server asks for credentials (S1a), so a GREET brings two control
# messages and the descriptor no longer fits. Then S1a removed as well: the tests pass again.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
cmsglen=$WORK/cmsg-len
copy_reference "$cmsglen"
edit='s/char buf\[CMSG_SPACE\(sizeof\(ucred\)\) \+ CMSG_SPACE\(kMaxFds \* sizeof\(int\)\)\];/char buf[CMSG_LEN(sizeof(ucred)) + CMSG_LEN(kMaxFds * sizeof(int))];  \/\/ BROKEN ON PURPOSE/'
mutate "$cmsglen/fdpass.hpp" "$edit"
echo "  graded (CMSG_LEN): $(grade_dir "$cmsglen")"
grep -A1 "^  FAIL" "$WORK/grade.txt" | grep -v '^--' | head -8 | sed 's/^/    /'
grep -q "^  FAIL  Ch05Steps\.\(rx1\|S7\)" "$WORK/grade.txt" || fail "no rx1 or S7 step test failed"
ok "with CMSG_LEN: the GREET tests fail ($(grep -c '^  FAIL' "$WORK/grade.txt") tests)"
start server "$(graded_bin server)" -s "$(sock_path cmsg-len)"
wait_log server "listening on"
"$(graded_bin client)" -s "$(sock_path cmsg-len)" --greet >"$WORK/greet.out" 2>"$WORK/greet.err"
wait_log server "GREET with .* descriptors: refused"
ok "client --greet: the server logs '$(grep -o 'GREET with .*' "$WORK/server.log" | head -n 1)'"

nocred=$WORK/no-passcred
copy_reference "$nocred"
mutate "$nocred/fdpass.hpp" "$edit"
mutate "$nocred/server.cpp" 's/uds::check\(setsockopt\(listener\.get\(\), SOL_SOCKET, SO_PASSCRED, &one, sizeof one\),\s*"setsockopt SO_PASSCRED"\);/static_cast<void>(one);  \/\/ S1a removed: no credentials/'
echo "  graded (CMSG_LEN, and no SO_PASSCRED): $(grade_dir "$nocred")"
grep -A1 "^  FAIL" "$WORK/grade.txt" | grep -v "^--" | sed "s/^/    /"
grep -q "^  FAIL  Ch05Steps.rx1_Buffers" "$WORK/grade.txt" && fail "without S1a the rx1 buffer test still fails"
ok "without S1a the descriptor arrives again: one control message, and 48 bytes (CMSG_LEN 28 + 20) hold its CMSG_SPACE of 24; only the credential tests fail"
echo "$CHAPTER/$NAME: CMSG_LEN loses the descriptor once two control messages arrive; alone, one fits by luck"
