#!/usr/bin/env bash
# Exercise 3 of chapter 03 (break it on purpose): S7 sends to the sender's path instead of the
# pinned /proc/self/fd/N. A sender that swaps its socket file for a symlink between the server's
# check and its sendto gets the reply delivered into another socket (attacker.py).
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
broken=$WORK/bypath
copy_reference "$broken"
mutate "$broken/server.cpp" 's/uds::Address pinned = uds::Address::path\("\/proc\/self\/fd\/" \+ std::to_string\(file\.get\(\)\)\);/uds::Address pinned = from;  \/\/ BROKEN ON PURPOSE: the path, looked up again/'
echo "  graded (sendto the path): $(grade_dir "$broken")"
bypath=$(graded_bin server)
reference=$(ref_bin server)

attack() {  # attack LABEL SERVER MODE ARGS...: prints "sent to-us to-victim"
    local label=$1 server=$2 mode=$3 sock dir
    shift 3
    dir=$WORK/$label-$mode
    mkdir -p "$dir"
    sock=$dir/server.sock
    if [ "$mode" = held ]; then
        # --seccomp-bpf: only sendto stops the server, so "stopped" means "in sendto".
        start "$label-$mode" strace -f --seccomp-bpf -o /dev/null -e trace=sendto \
            -e inject=sendto:delay_enter=300000 "$server" -s "$sock"
        wait_log "$label-$mode" "bound to"
        python3 attacker.py "$sock" "$dir" held "$(pgrep -P "$LAST_PID")"
    else
        start "$label-$mode" "$server" -s "$sock"
        wait_log "$label-$mode" "bound to"
        python3 attacker.py "$sock" "$dir" loop "$@"
    fi
}
read -r sent mine stolen < <(attack bypath "$bypath" loop 3) || fail "attacker.py"
ok "by path, 3 s of swapping: $sent requests, $mine replies to the attacker, $stolen into the victim"
read -r sent mine stolen < <(attack reference "$reference" loop 3) || fail "attacker.py"
[ "$stolen" = 0 ] || fail "the reference let $stolen replies into the victim"
ok "pinned (the reference), 3 s: $sent requests, $mine replies to the attacker, 0 into the victim"

command -v strace >/dev/null || skip "strace is not installed: the window could not be held open"
read -r sent mine stolen < <(attack bypath "$bypath" held) || fail "attacker.py held"
[ "$stolen" = 1 ] || fail "with the window held open, the by-path server's reply did not reach the victim ($mine to us)"
ok "by path, sendto held 300 ms by strace and the file swapped meanwhile: the reply lands in the victim"
read -r sent mine stolen < <(attack reference "$reference" held) || fail "attacker.py held"
[ "$stolen" = 0 ] && [ "$mine" = 1 ] || fail "reference, window held: $mine to us, $stolen to the victim"
ok "pinned, the same: the reply goes to the socket file the server checked (now renamed), never the victim"
echo "$CHAPTER/$NAME: sendto(path) looks the name up again (a swapped symlink wins); /proc/self/fd/N sends to the file checked"
