#!/usr/bin/env bash
# Exercise 2 of chapter 03 (observation, the chapter's server): 100 requests sent without reading
# a reply. Unconnected, the server can queue max_dgram_qlen + 1 replies for us and drops the rest
# ("no room"); connected to the server, all 100 are kept, held in the server's send buffer.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
command -v ss >/dev/null || skip "ss is not installed (iproute2)"
qlen=$(cat /proc/sys/net/unix/max_dgram_qlen)
sock=$(sock_path queue)
start server "$(ref_bin server)" -s "$sock"
wait_log server "bound to"

read -r n held < <(python3 queue.py "$sock") || fail "queue.py (unconnected)"
[ "$n" = $((qlen + 1)) ] || fail "unconnected: $n replies kept, expected max_dgram_qlen + 1 = $((qlen + 1))"
wait_log server "no room"
ok "unconnected: $n of 100 replies kept (max_dgram_qlen $qlen, + 1); the server's Send-Q held $held bytes"
ok "server log: $(grep -c 'no room' "$WORK/server.log") x 'sendto failed: no room (...); reply dropped rather than blocking every other client'"

read -r n held2 < <(python3 queue.py "$sock" --connect) || fail "queue.py (connected)"
[ "$n" = 100 ] || fail "connected: $n replies kept, expected all 100"
ok "connected to the server: all $n replies kept; the server's Send-Q held $held2 bytes (no queue limit)"
echo "$CHAPTER/$NAME: $((qlen + 1)) of 100 replies unconnected, 100 connected (the limit is skipped for a receiver connected to its sender)"
