# bench/bench.mk - `make bench`: measure what the tutorial claims about AF_UNIX (included by the
# top Makefile). Every bench/*.cpp is one program, built into bench/bin/.
#
#   make bench                 full run (a few minutes); tables on stdout and in bench/results.md
#   make bench BENCH_QUICK=1   the same tables with fewer repetitions (under a minute)
#   make bench BENCH_CH04_DIR=DIR   take chapter 04's server and loadgen from DIR
#
# Benchmarks are built optimised like the chapters (-O2), never with sanitizers.

BENCH_QUICK ?=
BENCH_CH04_DIR ?= 04-multi-client
BENCH_SRCS := $(wildcard bench/*.cpp)
BENCH_PROGS := $(patsubst bench/%.cpp,bench/bin/%,$(BENCH_SRCS))
# Without Google Benchmark the in-process micro-benchmark is skipped (with a note), not the rest.
ifneq ($(filter bench bench-build,$(MAKECMDGOALS)),)
  BENCH_HAVE_GBENCH := $(shell $(PKG_CONFIG) --exists benchmark 2>/dev/null && echo yes)
  ifneq ($(BENCH_HAVE_GBENCH),yes)
    BENCH_PROGS := $(filter-out bench/bin/framer,$(BENCH_PROGS))
  endif
endif
BENCH_GBENCH_CFLAGS = $(shell $(PKG_CONFIG) --cflags benchmark 2>/dev/null)
BENCH_GBENCH_LIBS = $(shell $(PKG_CONFIG) --libs benchmark 2>/dev/null)

# Chapter 04's programs are built too when the chapter is in this tree (the server-model tables
# need them); with BENCH_CH04_DIR pointing elsewhere they are used as they are.
BENCH_CH04_PROGS := $(if $(filter 04-multi-client,$(BENCH_CH04_DIR)),$(filter \
    04-multi-client/server 04-multi-client/loadgen,$(PROGRAMS)))

.PHONY: bench bench-build need-gbench

bench-build: $(BENCH_PROGS) $(BENCH_CH04_PROGS)

# Built with every CPU (unless make already runs in parallel), then run.
BENCH_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
bench:
	@$(MAKE) --no-print-directory $(if $(filter -j% --jobserver%,$(MAKEFLAGS)),,-j$(BENCH_JOBS)) bench-build
	@BENCH_QUICK='$(BENCH_QUICK)' BENCH_CH04_DIR='$(BENCH_CH04_DIR)' \
	  BENCH_NO_GBENCH='$(if $(filter yes,$(BENCH_HAVE_GBENCH)),,1)' bench/run.sh

$(BENCH_PROGS): bench/bin/%: $(BUILD)/bench/%.o $(LIB)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

# No debug info for the benchmark programs, and the server-model driver (it only starts programs
# and reads their output) at -O1: together they cut the build from a fresh clone by a third.
$(BUILD)/bench/%.o: OPT := -O2
$(BUILD)/bench/servers.o: OPT := -O1

# The line-framer micro-benchmark uses Google Benchmark.
$(BUILD)/bench/framer.o: CPPFLAGS += $(BENCH_GBENCH_CFLAGS)
$(BUILD)/bench/framer.o: | need-gbench
bench/bin/framer: LDLIBS := $(BENCH_GBENCH_LIBS) $(LDLIBS)

need-gbench:
	@$(PKG_CONFIG) --exists benchmark || { \
	  echo "Google Benchmark was not found by pkg-config (package 'benchmark')."; \
	  echo "Install it with:  make deps   (or: sudo apt-get install libbenchmark-dev)"; \
	  exit 1; }

-include $(patsubst bench/%.cpp,$(BUILD)/bench/%.d,$(BENCH_SRCS))

# `make clean` removes the benchmark programs and their generated output too.
.PHONY: bench-clean
clean: bench-clean
bench-clean:
	rm -rf bench/bin bench/results.md bench/results.md.new bench/latency.svg
