#!/usr/bin/env bash
# Exercise 4 of chapter 04: the epoll model edge-triggered. The kernel's own view (fdinfo of the
# epoll set) shows EPOLLET on every client; a client that floods the server does not starve a
# client that sends one line at a time, thanks to the read budget and the ready list. A copy
# without the budget is measured next to it.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
use_solution server
sock=$(sock_path et)
start et "$SERVER" -s "$sock"
wait_log et "listening on"
server=$LAST_PID
python3 - "$sock" "$server" <<'PY' || fail "fdinfo (see above)"
import os, socket, sys
path, pid = sys.argv[1], sys.argv[2]
c = socket.socket(socket.AF_UNIX)
c.connect(path)
c.sendall(b"hi\n")
assert c.recv(10) == b"HI\n"
for fd in os.listdir(f"/proc/{pid}/fd"):
    if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[eventpoll]":
        lines = [l.split() for l in open(f"/proc/{pid}/fdinfo/{fd}") if l.startswith("tfd:")]
        masks = {int(l[1]): int(l[3], 16) for l in lines}
        et = [f for f, m in masks.items() if m & (1 << 31)]
        assert len(et) == 1, masks  # our one client; the listener and the stop pipe are level
        print(f"  ok: the epoll set (fdinfo): client descriptor {et[0]} watched with "
              f"events {masks[et[0]]:#x} (EPOLLET | EPOLLRDHUP | EPOLLOUT | EPOLLIN); "
              f"{len(masks) - 1} others level-triggered")
PY
read -r rate median worst probes < <(python3 flood.py "$sock" 2) || fail "flood.py"
awk -v m="$median" 'BEGIN { exit !(m < 50) }' || fail "a flooding client starved the probe: median $median ms"
ok "a flooder at $rate MB/s next to a probe: $probes round trips, median $median ms, worst $worst ms"

nobudget=$WORK/nobudget
mkdir -p "$nobudget"
cp server.cpp client.cpp model_epoll.hpp "$nobudget/"
mutate "$nobudget/model_epoll.hpp" 's/kBudget = 64 \* 1024;/kBudget = SIZE_MAX;  \/\/ EXPERIMENT: no budget/'
build_cpp "$nobudget/server.cpp" "$WORK/server-nobudget" -I"$nobudget"
start nobudget "$WORK/server-nobudget" -s "$(sock_path nobudget)"
wait_log nobudget "listening on"
read -r rate median worst probes < <(python3 flood.py "$(sock_path nobudget)" 2) || fail "flood.py"
ok "without the budget (read until EAGAIN, whatever it takes): $probes round trips, median $median ms, worst $worst ms"
echo "$CHAPTER/$NAME: every client edge-triggered (EPOLLET), read until EAGAIN within a budget; nothing forgotten, nobody starved"
