#!/usr/bin/env bash
# Exercise 1 of chapter 07 (observation, the chapter's server under systemd-socket-activate):
# five clients connect and send before the server runs. The listener holds their connections
# (ss -xl: Recv-Q 5); the server, once started, answers all five in order. After it stops, the
# file stays but nobody listens: ECONNREFUSED (a .socket unit would keep listening instead).
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
command -v systemd-socket-activate >/dev/null || skip "systemd-socket-activate is not installed (package systemd)"
command -v ss >/dev/null || skip "ss is not installed (iproute2)"
path=$(sock_path activation)
mkfifo "$WORK/go"
# The server waits for a line on the FIFO before it starts: the wrapper shell execs it, so its
# pid is still the one in LISTEN_PID.
start activate systemd-socket-activate -l "$path" \
    sh -c 'read -r _ <"$1" && exec "$0"' "$(ref_bin server)" "$WORK/go"
wait_log activate "Listening on $path"
python3 - "$path" "$WORK/queued" >"$WORK/clients.log" 2>&1 <<'PY' &
import socket, sys, time
path, flag = sys.argv[1], sys.argv[2]
socks = []
for i in range(5):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)  # succeeds: the listener exists, the server does not yet
    s.sendall(b"client %d\n" % i)
    socks.append(s)
open(flag, "w").write("5\n")
for i, s in enumerate(socks):
    s.settimeout(10)
    got = b""
    while not got.endswith(b"\n"):
        chunk = s.recv(100)
        assert chunk, "closed"
        got += chunk
    print(got.decode().strip(), flush=True)
    s.close()  # this server is iterative: the next one is accepted when this one leaves
PY
clients=$!
_pids+=("$clients")
limit=$(($(_now_ms) + 10000))
until [ -s "$WORK/queued" ]; do
    [ "$(_now_ms)" -lt "$limit" ] || fail "the five clients did not connect"
    sleep 0.02
done
q=$(ss -xlnH | awk -v p="$path" '$5 == p { print $3, $4 }')
[ "${q%% *}" = 5 ] || fail "ss -xl: Recv-Q/Send-Q '$q', expected 5 queued"
grep -q "accepted a connection" "$WORK/activate.log" && fail "the server ran already"
ok "5 clients connected and sent, no server yet: ss -xl shows Recv-Q ${q%% *} (backlog ${q#* })"
echo go >"$WORK/go"
wait "$clients" || fail "the clients: $(cat "$WORK/clients.log")"
[ "$(tr '\n' ' ' <"$WORK/clients.log")" = "CLIENT 0 CLIENT 1 CLIENT 2 CLIENT 3 CLIENT 4 " ] ||
    fail "replies: $(cat "$WORK/clients.log")"
wait_log activate "listening on .* \(inherited\)"
ok "the server started, took the socket (inherited) and answered all five, in order"
kill -TERM "$LAST_PID"
wait_gone "$LAST_PID"
[ -S "$path" ] || fail "the socket file went with the server"
out=$("$(ref_bin client)" -s "$path" hi 2>&1) && fail "a client was served after the server stopped"
grep -q "Connection refused" <<<"$out" || fail "after the stop: $out"
ok "server stopped: the file stays (it is the service manager's), nobody listens: Connection refused"
echo "$CHAPTER/$NAME: connections made before the server exists wait in the listener's queue and are all answered"
