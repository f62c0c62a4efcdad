#!/usr/bin/env bash
# Exercise 3 of chapter 04 (an experiment on copies): kOutMax, the most reply bytes the epoll
# model holds for one client, at 4 KiB and at 1 MiB instead of 20 KiB. Each copy is graded and
# measured with loadgen --pipeline 64 --size 4000.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
loadgen=$(ref_bin loadgen)
measure() {  # measure LABEL SERVER: loadgen's verdict in one line
    local sock=$WORK/$1.sock out
    start "$1" "$2" -s "$sock"
    wait_log "$1" "listening on"
    out=$("$loadgen" -s "$sock" -c 10 -n 20000 --pipeline 64 --size 4000 -t 3 2>&1)
    grep -o 'requests/s: [0-9]*' <<<"$out" || tail -n 1 <<<"$out" | cut -c1-110
}
line=$(measure reference "$(ref_bin server)")
grep -q "requests/s" <<<"$line" || fail "the reference under loadgen: $line"
ok "kOutMax 20 KiB (the chapter's): loadgen $line"
for size in 4 1024; do
    copy=$WORK/out-$size
    copy_reference "$copy"
    mutate "$copy/model_epoll.hpp" "s/inline constexpr std::size_t kOutMax = 20 \\* 1024;/inline constexpr std::size_t kOutMax = $size * 1024;  \\/\\/ EXPERIMENT/"
    echo "  graded (kOutMax $size KiB): $(grade_dir "$copy")"
    grep -A1 "^  FAIL" "$WORK/grade.txt" | grep -v '^--' | sed 's/^/    /' | head -6
    cp "$(graded_bin server)" "$WORK/server-$size"
    line=$(measure "out-$size" "$WORK/server-$size")
    echo "    loadgen: ${line:-(no summary)}"
    if [ "$size" = 4 ]; then
        grep -q "requests/s" <<<"$line" && fail "kOutMax 4 KiB did not stall"
        ok "kOutMax 4 KiB: less room than kMinRead from the start, so EPOLLIN is never watched again: the server stalls"
    else
        expect_fail Ch04Epoll.NeverReadingClientsCostAtMost32KiBEachAndTheMemoryComesBack
        ok "kOutMax 1 MiB: no faster here, and never-reading clients cost up to 1 MiB each: the memory test fails"
    fi
done
echo "$CHAPTER/$NAME: the bound trades throughput per client against memory per hostile client; 20 KiB holds both"
