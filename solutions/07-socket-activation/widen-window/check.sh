#!/usr/bin/env bash
# Exercise 3 of chapter 07 (break it on purpose): the start-up in the naive order - bind the
# final path (mode 0777 minus the umask), listen, then chmod - instead of S4-S7. The S4 tests
# hold each start-up call for 100 ms with strace and connect in a loop meanwhile: they get in.
# (Moving listen alone before chmod opens no window here: until S6's rename the file is in a
# 0700 directory nobody else can enter. check.sh shows that too.)
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
command -v strace >/dev/null || skip "strace is not installed: the S4 tests hold the window open with it"

# 1. listen moved before chmod, nothing else: still no window (the private directory).
moved=$WORK/listen-first
copy_reference "$moved"
mutate "$moved/server.cpp" 's/\n\s*\/\/ S7\. listen: last\.[^\n]*\n\s*uds::check\(listen\(sock\.get\(\), 16\), "listen " \+ path\);\n/\n/'
mutate "$moved/server.cpp" 's/("bind " \+ temporary\.str\(\)\);\n)/$1    uds::check(listen(sock.get(), 16), "listen " + path);  \/\/ MOVED: before chmod\n/'
echo "  graded (listen before chmod, in the private directory): $(grade_dir "$moved")"
grep -q "^  PASS  Ch07Steps.S4_Bind_NoConnectionWhileTheFileIsWiderThanAsked" "$WORK/grade.txt" ||
    fail "moving listen alone opened a window?"
ok "listen before chmod, still bound in the 0700 directory: the S4 tests pass (nobody can reach the name before S6)"

# 2. The naive order: the final name at once.
naive=$WORK/naive
copy_reference "$naive"
mutate "$naive/server.cpp" 's/std::string tmpl = directory_of\(path\) \+ "\/\.uds-XXXXXX";.*?"bind " \+ temporary\.str\(\)\);\n/\/\/ BROKEN ON PURPOSE: the final name at once, listening, then chmod and chown\n    uds::check(bind(sock.get(), addr.sockaddr_ptr(), addr.length()), "bind " + addr.str());\n    uds::check(listen(sock.get(), 16), "listen " + path);\n    priv.inside = path;\n/s'
mutate "$naive/server.cpp" 's/\n    if \(renameat2\(AT_FDCWD, priv\.inside\.c_str\(\).*?\n    \}\n/\n/s'
mutate "$naive/server.cpp" 's/\n\s*\/\/ S7\. listen: last\.[^\n]*\n\s*uds::check\(listen\(sock\.get\(\), 16\), "listen " \+ path\);\n/\n/'
echo "  graded (bind the final path, listen, chmod): $(grade_dir "$naive")"
expect_fail Ch07Steps.S4_Bind_NoConnectionWhileTheFileIsWiderThanAsked
if is_root; then
    expect_fail Ch07Steps.S4_Bind_NobodyConnectsWhileTheModeIsWiderThanAsked
    grep -o "connect() as uid 65534 during start-up: .*" "$WORK/grade-out/tests.log" | head -n 1 | sed 's/^/        /'
fi

# 3. Which call was held: the naive server under strace, each call's return held 100 ms, and
#    a connect loop as another user would see it: here, the mode at each successful connect.
path=$(sock_path naive)
python3 - "$path" >"$WORK/loop.out" <<'PY' &
import os, socket, stat, sys, time
path, end, wide = sys.argv[1], time.monotonic() + 10, []
while time.monotonic() < end:
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        wide.append(mode)
        s.close()
        if mode == 0o660:
            break
    except OSError:
        pass
print(" ".join(sorted({oct(m) for m in wide})))
PY
loop=$!
_pids+=("$loop")
(umask 0 && exec strace -f -tt -o "$WORK/strace.txt" -e trace=bind,listen,chmod,chown \
    -e inject=bind,listen,chmod,chown:delay_exit=100000 \
    "$(graded_bin server)" -s "$path" --mode 0660 --group "$(id -g)") >"$WORK/naive.log" 2>&1 &
_pids+=($!)
wait "$loop"
modes=$(cat "$WORK/loop.out")
grep -q 0o777 <<<"$modes" || fail "no connect while the file was 0777 (modes seen: $modes)"
ok "connected while the file was still 0777 (modes seen at connect: $modes): the window is listen's return, before chmod"
sed -n '/bind(/,/chown(/p' "$WORK/strace.txt" | sed -E 's/^[0-9]+ +//; s/^/        /' | cut -c1-110
echo "$CHAPTER/$NAME: bind the final name, listen, chmod: a client gets in between; S4-S7's order leaves no window"
