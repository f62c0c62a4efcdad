#!/usr/bin/env bash
# bench/run.sh - what `make bench` runs, from the top of the tree, once bench/bin/* are built.
#
#   BENCH_QUICK=1        fewer repetitions (the same tables, under a minute)
#   BENCH_CH04_DIR=DIR   where chapter 04's server and loadgen are (default 04-multi-client)
#
# Every section prints Markdown; it goes to stdout and to bench/results.md. A section that fails
# says so and the run goes on; the exit status is 1 if any failed.
set -u
cd "$(dirname "$0")/.." || exit 1

quick=
mode="full run"
if [ -n "${BENCH_QUICK:-}" ] && [ "${BENCH_QUICK}" != 0 ]; then
    quick=--quick
    mode="quick run (BENCH_QUICK=1: fewer repetitions)"
fi
ch04=${BENCH_CH04_DIR:-04-multi-client}
out=bench/results.md
plot=bench/latency.svg
work=$(mktemp -d /tmp/uds-bench-XXXXXX) || exit 1
trap 'rm -rf "$work"' EXIT
failed=
start=$(date +%s)

emit() { printf '%s\n' "$*" | tee -a "$out.new"; }

# section NAME TITLE CMD...: run one benchmark program, its tables to stdout and to the results file.
section() {
    local name=$1 title=$2
    shift 2
    emit ""
    emit "## $title"
    emit ""
    "$@" | tee -a "$out.new"
    if [ "${PIPESTATUS[0]}" -ne 0 ]; then
        failed="$failed $name"
        emit "**$name failed** (its error is on stderr above)."
        emit ""
    fi
}

: >"$out.new"
emit "# uds-tutorial: benchmark results"
emit ""
emit "$mode, $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
emit "Machine: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) CPUs online, $(uname -sr)."
emit "Load average at the start (1/5/15 min): $(cut -d' ' -f1-3 /proc/loadavg); other processes keep running during the benchmark."
emit "Reproduce: \`make bench\` (or \`make bench BENCH_QUICK=1\`). Only ratios measured in the same run are comparable."

section ipc "IPC: the same bytes through six transports" bench/bin/ipc $quick --plot "$work/latency"
if [ -s "$work/latency-same-cpu.dat" ]; then
    if command -v gnuplot >/dev/null 2>&1; then
        diff=
        [ -s "$work/latency-different-cpus.dat" ] && diff="$work/latency-different-cpus.dat"
        machine="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) CPUs, $(uname -r)"
        if gnuplot -e "same='$work/latency-same-cpu.dat'; diff='$diff'; out='$plot'; machine='${machine//\'/}'" \
            bench/latency.gp; then
            emit "![Round-trip latency p50 by message size, per transport](latency.svg)"
            emit ""
            emit "Plot: \`bench/latency.svg\`."
        else
            emit "(gnuplot failed: no plot.)"
        fi
    else
        emit "(No plot: gnuplot is not installed. \`apt-get install gnuplot-nox\` adds bench/latency.svg.)"
    fi
fi
if [ -n "${BENCH_NO_GBENCH:-}" ]; then
    emit ""
    emit "## In-process micro-benchmarks"
    emit ""
    emit "skipped: Google Benchmark is not installed (\`make deps\`, or \`apt-get install libbenchmark-dev\`)."
else
    section framer "In-process micro-benchmarks" bench/bin/framer $quick
fi
section servers "Server models (chapter 04) and Redis" bench/bin/servers $quick --dir "$ch04"
section fdpass "Descriptor passing vs copying" bench/bin/fdpass $quick

emit ""
emit "Wall time: $(($(date +%s) - start)) s."
mv "$out.new" "$out"
echo "bench: tables written to $out" >&2
if [ -n "$failed" ]; then
    echo "bench: failed:$failed" >&2
    exit 1
fi
