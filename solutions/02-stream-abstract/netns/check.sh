#!/usr/bin/env bash
# Exercise 4 of chapter 02 (observation, the chapter's own programs): a server in its own network
# namespace. Its abstract name is invisible outside (ECONNREFUSED) and served inside (nsenter);
# a path socket is found through the file system from both.
# As root: unshare -n. Otherwise: unshare -rn (a user namespace too), where the system allows it.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
server=$(ref_bin server)
client=$(ref_bin client)
if is_root; then
    unshare_args=(-n)
    nsenter_args=(-n)
else
    unshare -rn true 2>/dev/null || skip "needs root, or unprivileged user namespaces (unshare -rn)"
    unshare_args=(-r -n)
    nsenter_args=(-U -n --preserve-credentials)
fi
name=uds-netns-$$
start ns unshare "${unshare_args[@]}" "$server" -s "@$name"
ns=$LAST_PID
wait_log ns "listening on"
ok "server in a new network namespace: unshare ${unshare_args[*]} server -s @$name (pid $ns)"

out=$("$client" -s "@$name" hi 2>&1) && fail "a client outside the namespace was served: $out"
grep -q "Connection refused" <<<"$out" || fail "outside: expected ECONNREFUSED, got: $out"
ok "a client outside: connect @$name: Connection refused"
grep -q "@$name\$" /proc/net/unix && fail "/proc/net/unix outside lists @$name"
ok "/proc/net/unix outside does not list @$name"
out=$(nsenter "${nsenter_args[@]}" -t "$ns" "$client" -s "@$name" hi 2>&1) ||
    fail "a client inside (nsenter) was not served: $out"
[ "$out" = HI ] || fail "inside: $out"
ok "a client inside: nsenter ${nsenter_args[*]} -t $ns client -s @$name hi -> HI"

path=$(sock_path netns)
start nspath unshare "${unshare_args[@]}" "$server" -s "$path" --allow-any
wait_log nspath "listening on"
out=$("$client" -s "$path" --server-uid "$(stat -c %u "$path")" hi 2>&1) ||
    fail "a path socket in the other namespace was not reachable: $out"
[ "$out" = HI ] || fail "path: $out"
ok "the same server on a path inside the namespace: reached from outside through the file (HI)"
echo "$CHAPTER/$NAME: abstract names belong to a network namespace; paths belong to the file system"
