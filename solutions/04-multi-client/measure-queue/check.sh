#!/usr/bin/env bash
# Exercise 1 of chapter 04 (observation, the chapters' programs): loadgen against chapter 01's
# iterative server and against each model here. 01 serves one connection to its end before it
# accepts the next, so the last clients' first replies wait for everybody before them; and with
# more connections than its backlog (16) can queue, loadgen's connect() itself waits, then fails.
cd "$(dirname "$0")" && . ../../check-lib.sh || exit 1
make -s --no-print-directory -C "$ROOT" build-01 >/dev/null || fail "make build-01 failed"
loadgen=$(ref_bin loadgen)
measure() {  # measure LABEL SOCKET LOADGEN-ARGS...: prints requests/s and latency
    local label=$1 sock=$2 out t0
    shift 2
    t0=$(_now_ms)
    out=$("$loadgen" -s "$sock" "$@" 2>&1) || { echo "$out"; return 1; }
    printf '  %-22s %5d ms  %s; %s\n' "$label" $(($(_now_ms) - t0)) \
        "$(grep -o 'requests/s: [0-9]*' <<<"$out")" "$(grep -o 'p50.*' <<<"$out")"
}
start ch01 "$ROOT/01-stream-path/server" -s "$(sock_path ch01)"
wait_log ch01 "listening on"
measure "01, 16 clients" "$(sock_path ch01)" -c 16 -n 4000 | tee "$WORK/ch01.txt" || fail "loadgen against 01 with 16 clients"
for model in fork thread epoll; do
    # fork and thread cap the clients (128, 256 by default): allow the 200.
    start "$model" "$(ref_bin server)" -s "$(sock_path "$model")" --model "$model" --max-clients 300
    wait_log "$model" "listening on"
    measure "04 $model, 16 clients" "$(sock_path "$model")" -c 16 -n 4000 || fail "loadgen against $model"
    measure "04 $model, 200 clients" "$(sock_path "$model")" -c 200 -n 20000 || fail "loadgen against $model"
done
ok "every run complete and correct; 01's max latency is the time its last client waited for the others"

# 200 connections at once against 01: the 18th connect waits (the backlog is full), and the
# first client, accepted, waits for a request loadgen sends only once all are connected.
t0=$(_now_ms)
out=$("$loadgen" -s "$(sock_path ch01)" -c 200 -n 20000 -t 2 2>&1) && fail "loadgen -c 200 against 01 succeeded"
grep -q "connect .*Resource temporarily unavailable" <<<"$out" || fail "loadgen -c 200 against 01: $out"
ok "01 with 200 clients: '$(grep -o 'connect .*unavailable' <<<"$out" | sed "s|$WORK/||")' after $(($(_now_ms) - t0)) ms: the listen queue (16) is full, connect waits (up to -t), then EAGAIN"
echo "$CHAPTER/$NAME: 01 serves one connection at a time (its backlog holds 16 more); every model serves 200 at once"
