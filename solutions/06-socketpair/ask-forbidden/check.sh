#!/usr/bin/env bash
# Exercise 1 of chapter 06 (observation, the chapter's programs): a symlink out of the root and a
# path with '..' are both refused by the monitor's policy; a worker that opens the file itself
# (here /bin/cat, started as the worker with --worker) is stopped by its uid instead.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
server=$(ref_bin server)
cp -r "$ROOT/$CHAPTER/files" "$WORK/files-copy"
ln -s /etc/shadow "$WORK/files-copy/shadow"
chmod -R a+rX "$WORK/files-copy"
for walk in "" --no-openat2; do
    "$server" --root "$WORK/files-copy" $walk -- shadow ../../etc/shadow >"$WORK/out" 2>"$WORK/log" </dev/null
    rc=$?
    [ "$rc" = 1 ] || fail "the monitor exited $rc, expected 1 (the worker's: two refusals)"
    grep -q "OPEN shadow: refused: " "$WORK/log" && grep -q "OPEN ../../etc/shadow: refused: '..' is not allowed" "$WORK/log" ||
        { cat "$WORK/log"; fail "the two refusals are not in the monitor's log"; }
    [ -s "$WORK/out" ] && fail "something of /etc/shadow reached stdout"
    ok "${walk:-openat2}: $(grep -o 'OPEN shadow: refused: .*' "$WORK/log"); OPEN ../../etc/shadow: refused: '..' is not allowed"
done
grep -q "refused by the monitor" "$WORK/log" || fail "the worker did not report the refusal"
ok "the worker: 'refused by the monitor', exit 1; nothing printed"

# A worker that opens the file itself: any program will do as the worker.
"$server" --root "$WORK/files-copy" --worker /bin/cat -- /etc/shadow >"$WORK/out" 2>"$WORK/log" </dev/null
rc=$?
grep -q "Permission denied" "$WORK/log" || { cat "$WORK/log"; fail "cat was not refused"; }
[ "$rc" = 1 ] || fail "the monitor exited $rc"
if is_root; then
    grep -q "as nobody (uid 65534)" "$WORK/log" || fail "the worker did not run as nobody"
    ok "as the worker, /bin/cat /etc/shadow runs as nobody (uid 65534): Permission denied (EACCES): the drop stops it, not the policy"
else
    ok "as the worker, /bin/cat /etc/shadow: Permission denied (not root: the worker is you, and /etc/shadow is root's)"
fi
echo "$CHAPTER/$NAME: the policy refuses both paths; a worker that opens files itself meets its uid"
