#!/usr/bin/env bash
# Exercise 2 of chapter 06 (break it on purpose): S9 without its seals, then with F_SEAL_WRITE
# only. The worker refuses to map either.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
unsealed=$WORK/unsealed
copy_reference "$unsealed"
mutate "$unsealed/server.cpp" 's/uds::check\(\s*fcntl\(memfd\.get\(\), F_ADD_SEALS, F_SEAL_SHRINK \| F_SEAL_GROW \| F_SEAL_WRITE \| F_SEAL_SEAL\),\s*"fcntl F_ADD_SEALS"\);/\/\/ BROKEN ON PURPOSE: no seals/'
echo "  graded (no seals): $(grade_dir "$unsealed")"
expect_fail Ch06Steps.S9_List_SendsASealedMemfdWithTheListing
cp "$(graded_bin server)" "$WORK/server-unsealed"
write_only=$WORK/write-only
copy_reference "$write_only"
mutate "$write_only/server.cpp" 's/F_ADD_SEALS, F_SEAL_SHRINK \| F_SEAL_GROW \| F_SEAL_WRITE \| F_SEAL_SEAL/F_ADD_SEALS, F_SEAL_WRITE/'
build_cpp "$write_only/server.cpp" "$WORK/server-write-only"

for variant in unsealed write-only; do
    "$WORK/server-$variant" --root "$ROOT/$CHAPTER/files" --worker "$(ref_bin client)" -- --list \
        >"$WORK/out" 2>"$WORK/$variant.log" </dev/null
    rc=$?
    grep -q "client: the monitor sent an unsealed buffer: refusing to map it" "$WORK/$variant.log" ||
        { cat "$WORK/$variant.log"; fail "$variant: the worker mapped it"; }
    [ "$rc" = 1 ] || fail "$variant: the monitor exited $rc, expected 1"
    ok "$variant: 'the monitor sent an unsealed buffer: refusing to map it', worker and monitor exit 1"
done
echo "$CHAPTER/$NAME: no seals, or F_SEAL_WRITE alone: the worker refuses to map (it needs shrink, grow and write)"
