#!/usr/bin/env bash
# Exercise 2 of chapter 01 (break it on purpose): S5a replies to each read() as if it were one
# line. Builds that copy of the chapter, shows what a client sees, and grades it: the tests of
# the framing go red.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
broken=$WORK/broken
copy_reference "$broken"
mutate "$broken/server.cpp" 's/\n(\s*)framer\.feed\(\{buf, static_cast<std::size_t>\(n\)\}\);/\n$1\/\/ BROKEN ON PURPOSE: one read() taken as one line.\n$1std::string got(buf, static_cast<std::size_t>(n));\n$1if (got.back() == \x27\\n\x27) got.pop_back();\n$1send_reply(conn, uds::upcase(got) + "\\n", idle_ms);\n$1continue;/'
echo "  graded: $(grade_dir "$broken")"
expect_fail Ch01Steps.S5a_Read_OneLineInTwoWritesIsOneReply
expect_fail Ch01Contract.ManyRequestsInOneWriteAreAnsweredInOrder
expect_fail Ch01Contract.OverlongLineGetsErrorAndCloseAndTheServerGoesOn

# What a user sees, broken and reference side by side.
show() {  # show LABEL SERVER
    local sock
    sock=$(sock_path "$1")
    start "$1" "$2" -s "$sock"
    wait_log "$1" "listening on"
    python3 - "$sock" "$1" <<'PY'
import socket, sys, time
path, label = sys.argv[1], sys.argv[2]
def replies(s, wait):
    s.settimeout(wait)
    got = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except socket.timeout:
        pass
    return got
s = socket.socket(socket.AF_UNIX); s.connect(path)
s.sendall(b"hel")                      # half a line, then the rest: a slow typist, a pipe
early = replies(s, 0.3)
s.sendall(b"lo\n")
rest = replies(s, 0.3)
print(f"  {label:9} 'hel' then 'lo\\n' -> {early + rest!r}")
s = socket.socket(socket.AF_UNIX); s.connect(path)
s.sendall(b"a" * 5000 + b"\n")          # longer than the protocol allows
got = replies(s, 1)
print(f"  {label:9} 5000 bytes -> {len(got.splitlines())} line(s): {got[:40]!r}...")
PY
}
show broken "$(graded_bin server)" >"$WORK/broken.out"
show reference "$(ref_bin server)" >"$WORK/reference.out"
cat "$WORK/broken.out" "$WORK/reference.out"
grep -q "b'HEL\\\\nLO\\\\n'" "$WORK/broken.out" || fail "the broken server did not answer half a line"
grep -q "b'HELLO\\\\n'" "$WORK/reference.out" || fail "the reference did not answer HELLO"
grep -q "5000 bytes -> 1 line(s): b'ERROR line too long" "$WORK/reference.out" || fail "reference: no ERROR line"
grep -q "5000 bytes -> 1 line(s): b'ERROR" "$WORK/broken.out" && fail "the broken server refused the long line"
echo "$CHAPTER/$NAME: one read() as one line answers half lines and never refuses a long one; S5a's tests go red"
