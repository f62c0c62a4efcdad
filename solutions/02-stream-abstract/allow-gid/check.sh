#!/usr/bin/env bash
# Exercise 3 of chapter 02: --allow-gid GID serves a peer of another uid whose primary gid is GID.
# Peers of another uid take root to make (setpriv); without root only the options are checked.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
use_solution server client
name=uds-gid-$$
start server "$SERVER" -s "@$name" --allow-gid 4321
wait_log server "listening on"
wait_log server "peer check: serving uid $(id -u); gid 4321"
ok "the log says whom it serves: $(grep -o 'peer check: .*' "$WORK/server.log")"
out=$("$CLIENT" -s "@$name" hi) && [ "$out" = HI ] || fail "our own uid was not served: $out"
ok "our own uid is still served"
is_root || skip "needs root to run peers of another uid and gid (setpriv)"

cp "$CLIENT" "$WORK/client" && chmod 0755 "$WORK/client"
as() {  # as SETPRIV-ARGS...: run the client as uid 65534 with those group arguments
    setpriv --reuid=65534 "$@" "$WORK/client" -s "@$name" hi 2>&1
}
out=$(as --regid=4321 --clear-groups) || fail "uid 65534 with gid 4321 was refused: $out"
[ "$out" = HI ] || fail "uid 65534 gid 4321 got '$out'"
ok "uid 65534, gid 4321: served (HI)"
out=$(as --regid=65534 --clear-groups) && fail "uid 65534, gid 65534 was served"
grep -q "ERROR not allowed (uid 65534)" <<<"$out" || fail "expected the refusal line, got: $out"
ok "uid 65534, gid 65534: refused (ERROR not allowed (uid 65534))"
out=$(as --regid=65534 --groups=4321) && fail "a supplementary gid 4321 was served"
ok "uid 65534, gid 65534 with 4321 as a supplementary group: refused, SO_PEERCRED has the primary gid only"
wait_log server "refused a connection: peer pid=[0-9]+ uid=65534 gid=65534"

# The chapter's server does not know the option: the same peer is refused there.
start plain "$(ref_bin server)" -s "@$name-plain"
wait_log plain "listening on"
out=$(setpriv --reuid=65534 --regid=4321 --clear-groups "$WORK/client" -s "@$name-plain" hi 2>&1) &&
    fail "the chapter's server served uid 65534"
ok "the chapter's server (no --allow-gid) refuses uid 65534 gid 4321"
echo "$CHAPTER/$NAME: a peer of another uid is served when its primary gid is allowed, and only then"
