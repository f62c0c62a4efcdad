#!/usr/bin/env bash
# Exercise 5 of chapter 07 (observation, the chapter's programs): a service that runs as a
# transient uid (what DynamicUser=yes gives) while the service manager, root, made the socket.
# Without systemd as pid 1 here, systemd-socket-activate (root) plays systemd and setpriv drops
# the server to uid 61234 before it runs (DynamicUser= picks uids from 61184-65519).
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
command -v systemd-socket-activate >/dev/null || skip "systemd-socket-activate is not installed (package systemd)"
is_root || skip "the service manager is root in this exercise (run as root)"
path=$(sock_path dynamic)
cp "$(ref_bin server)" "$WORK/server" && chmod 0755 "$WORK/server"
start activate systemd-socket-activate -l "$path" \
    setpriv --reuid=61234 --regid=61234 --clear-groups "$WORK/server"
wait_log activate "Listening on $path"
out=$("$(ref_bin client)" -s "$path" -v "who are you" 2>&1) || fail "the client refused: $out"
grep -q "^WHO ARE YOU$" <<<"$out" || fail "no reply: $out"
seen=$(grep -o 'the listener is pid [0-9]* uid [0-9]* gid [0-9]*' <<<"$out")
grep -q "uid 0 gid 0" <<<"$seen" || fail "the client saw: $seen"
server_uid=$(ps -o uid= -p "$LAST_PID" | tr -d ' ')
[ "$server_uid" = 61234 ] || fail "the server runs as uid '$server_uid'"
ok "the server runs as uid 61234, but the client's SO_PEERCRED says: $seen (root, who called listen)"
wait_log activate "accepted a connection: peer pid=[0-9]+ uid=0 gid=0 exe=\? \(Permission denied\)"
ok "the server's own log: peer uid=0 as before, but exe=? (Permission denied): uid 61234 may not read a root process's /proc/PID/exe"
echo "$CHAPTER/$NAME: SO_PEERCRED names whoever called listen (the service manager, root), not the uid the service runs as"
