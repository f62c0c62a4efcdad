#!/usr/bin/env bash
# Exercise 2 of chapter 07: two sockets from the service manager (LISTEN_FDS=2, named with
# LISTEN_FDNAMES), both served with poll(). systemd-socket-activate plays systemd.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
command -v systemd-socket-activate >/dev/null || skip "systemd-socket-activate is not installed (package systemd)"
use_solution server
client=$(ref_bin client)
activate() {  # activate LABEL SERVER: two listeners, named first and second
    start "$1" systemd-socket-activate -l "$WORK/$1-a.sock" -l "$WORK/$1-b.sock" \
        --fdname=first:second "$2"
    wait_log "$1" "Listening on .*$1-b.sock as 4"
}
activate solution "$SERVER"
out=$("$client" -s "$WORK/solution-b.sock" "through the second") || fail "the second socket first: $out"
[ "$out" = "THROUGH THE SECOND" ] || fail "second: $out"
out=$("$client" -s "$WORK/solution-a.sock" "through the first") || fail "then the first: $out"
[ "$out" = "THROUGH THE FIRST" ] || fail "first: $out"
wait_log solution "LISTEN_FDS=2, LISTEN_FDNAMES=first:second"
wait_log solution "listening on .*solution-a.sock \(inherited, descriptor 3, name first\)"
wait_log solution "listening on .*solution-b.sock \(inherited, descriptor 4, name second\)"
ok "LISTEN_FDS=2: both served (the second socket started it); the log names each: $(grep -o 'descriptor 4, name second' "$WORK/solution.log")"

activate reference "$(ref_bin server)"
out=$("$client" -s "$WORK/reference-a.sock" hi) || fail "reference, first socket: $out"
out=$("$client" -s "$WORK/reference-b.sock" hi 2>&1) && fail "the chapter's server served the second socket: $out"
grep -q 'Connection refused' <<<"$out" || fail "second socket: $out"
ok "the chapter's server, for comparison, closes descriptor 4: the second socket says Connection refused"
echo "$CHAPTER/$NAME: both inherited sockets served through one poll loop, each logged with its LISTEN_FDNAMES name"
