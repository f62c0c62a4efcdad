# uds-tutorial: one Makefile for the whole tree.
#
#   make            build every chapter (binaries land next to their sources)
#   make run        every chapter's demo, one after the other
#   make test       build and run the GoogleTest suite
#   make check      the same suite with AddressSanitizer + UndefinedBehaviorSanitizer
#   make help       everything else
#
# Variables: CXX=clang++ works; VARIANT=asan builds a sanitized tree under build/;
# UDS_BIN_DIR points the tests at another tree of binaries (for grading your own).

CXX ?= g++
VARIANT ?= release
PKG_CONFIG ?= pkg-config

# Parallel by default (a student types plain `make test`); `make -j1 ...` still works.
# (Only at the top: a recursive make shares its parent's jobs.)
ifeq ($(MAKELEVEL)$(filter -j%,$(MAKEFLAGS)),0)
  MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 2)
endif
# Short build lines (`CXX 01-stream-path/server.cpp`); V=1 shows the whole commands.
ifeq ($(V),1)
  Q :=
  say = @:
else
  Q := @
  say = @printf '  %-5s %s\n' $(1) $(2)
endif

# Every chapter is a directory NN-name; every NN-name/*.cpp is one program.
CHAPTERS := $(sort $(patsubst %/,%,$(dir $(wildcard [0-9][0-9]-*/server.cpp))))
CHAPTER_NUMS := $(foreach c,$(CHAPTERS),$(firstword $(subst -, ,$(c))))

BUILD := build/$(notdir $(CXX))-$(VARIANT)
ifeq ($(VARIANT),asan)
  # Sanitized binaries live inside build/ so they never replace the normal ones.
  BINROOT := $(BUILD)/bin/
  SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
  OPT := -O1 -g
else
  BINROOT :=
  SANITIZE :=
  OPT := -O2 -g
endif
# Test code is not what we measure: compiled without optimisation it builds three times faster.
TEST_OPT := -O0 -g

WARNINGS := -Wall -Wextra -Wpedantic -Wconversion -Wshadow -Werror
CPPFLAGS += -Icommon -D_GNU_SOURCE
CXXFLAGS += -std=c++20 $(OPT) $(WARNINGS) $(SANITIZE) -MMD -MP
TEST_CXXFLAGS = -std=c++20 $(TEST_OPT) $(WARNINGS) $(SANITIZE) -MMD -MP
LDFLAGS += $(SANITIZE)
LDLIBS += -pthread

COMMON_SRCS := $(wildcard common/*.cpp)
COMMON_OBJS := $(patsubst %.cpp,$(BUILD)/%.o,$(COMMON_SRCS))
LIB := $(BUILD)/libuds.a

PROGRAM_SRCS := $(wildcard $(addsuffix /*.cpp,$(CHAPTERS)))
PROGRAMS := $(patsubst %.cpp,$(BINROOT)%,$(PROGRAM_SRCS))
# What the demos and tests run: every program but the chapters' own benchmarks.
RUN_PROGRAMS := $(filter-out %/bench,$(PROGRAMS))

# One test program per chapter (tests/chNN_*.cpp -> tests/chNN) and one for the rest
# (tests/common), all sharing the harness and the runner.
HARNESS_SRCS := tests/harness.cpp tests/main.cpp
HARNESS_OBJS := $(patsubst %.cpp,$(BUILD)/%.o,$(HARNESS_SRCS))
TEST_SRCS := $(filter-out $(HARNESS_SRCS),$(wildcard tests/*.cpp))
TEST_GROUPS := common $(sort $(foreach f,$(TEST_SRCS),$(filter ch%,$(firstword $(subst _, ,$(notdir $(f)))))))
test_srcs_of = $(if $(filter common,$(1)),$(filter-out tests/ch%,$(TEST_SRCS)),$(wildcard tests/$(1)_*.cpp))
TEST_BINS := $(addprefix $(BUILD)/tests/,$(TEST_GROUPS))
TEST_OBJS := $(patsubst %.cpp,$(BUILD)/%.o,$(TEST_SRCS))
GTEST_CFLAGS = $(shell $(PKG_CONFIG) --cflags gtest gmock 2>/dev/null)
GTEST_LIBS = $(shell $(PKG_CONFIG) --libs gtest gmock 2>/dev/null)

# Where the tests look for the programs under test (override to grade another tree).
UDS_BIN_DIR ?= $(abspath $(if $(BINROOT),$(BINROOT),.))
TEST_ARGS ?=

.PHONY: all run test check clean help deps need-gtest format-check $(addprefix run-,$(CHAPTER_NUMS)) \
        $(addprefix build-,$(CHAPTER_NUMS)) $(addprefix test-,$(CHAPTER_NUMS)) test-common \
        test-build
.DEFAULT_GOAL := all

all: $(PROGRAMS)

$(LIB): $(COMMON_OBJS)
	@mkdir -p $(@D)
	$(call say,AR,$@)
	$(Q)$(AR) rcs $@ $^

$(BUILD)/%.o: %.cpp
	@mkdir -p $(@D)
	$(call say,CXX,$<)
	$(Q)$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

$(BUILD)/tests/%.o: tests/%.cpp | need-gtest
	@mkdir -p $(@D)
	$(call say,CXX,$<)
	$(Q)$(CXX) $(CPPFLAGS) $(GTEST_CFLAGS) $(TEST_CXXFLAGS) -c $< -o $@

# Binaries next to the sources are shared by every compiler: remember which one linked them,
# so that switching CXX relinks them instead of silently testing the other compiler's build.
CXX_STAMP := build/.programs-linked-by-$(VARIANT)
$(shell mkdir -p build; [ "$$(cat $(CXX_STAMP) 2>/dev/null)" = "$(CXX)" ] || echo "$(CXX)" > $(CXX_STAMP))

$(PROGRAMS): $(BINROOT)%: $(BUILD)/%.o $(LIB) $(CXX_STAMP)
	@mkdir -p $(@D)
	$(call say,LD,$@)
	$(Q)$(CXX) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

define test_group_rule
$(BUILD)/tests/$(1): $(patsubst %.cpp,$(BUILD)/%.o,$(call test_srcs_of,$(1))) $(HARNESS_OBJS) $(LIB)
	$$(call say,LD,$$@)
	$(Q)$$(CXX) $$(LDFLAGS) $$^ $$(GTEST_LIBS) $$(LDLIBS) -o $$@
endef
$(foreach g,$(TEST_GROUPS),$(eval $(call test_group_rule,$(g))))

# A chapter's tests may run another chapter's programs too: chapter 04's compare with chapter
# 01's server (04-multi-client/chapter.mk says `test-04: build-01`); the common tests use 01's.

# One set of targets per chapter: build-01, run-01, test-01, ...
define chapter_rules
build-$(1): $(filter $(BINROOT)$(1)-%,$(PROGRAMS))
run-$(1): $(filter $(BINROOT)$(1)-%,$(RUN_PROGRAMS))
	@scripts/run-demo $(1)
test-$(1): $(filter $(BINROOT)$(1)-%,$(RUN_PROGRAMS)) $(BUILD)/tests/ch$(1)
	@UDS_BIN_DIR=$(UDS_BIN_DIR) scripts/run-tests $(BUILD)/tests/ch$(1) -- $(TEST_ARGS)
endef
$(foreach n,$(CHAPTER_NUMS),$(eval $(call chapter_rules,$(n))))
test-common: $(BUILD)/tests/common $(filter $(BINROOT)01-%,$(RUN_PROGRAMS))
	@UDS_BIN_DIR=$(UDS_BIN_DIR) scripts/run-tests $(BUILD)/tests/common -- $(TEST_ARGS)

run: $(RUN_PROGRAMS)
	@for n in $(CHAPTER_NUMS); do scripts/run-demo $$n || exit 1; done

test-build: $(RUN_PROGRAMS) $(TEST_BINS)

# Every test program at once (they spend most of their time waiting on the programs they
# drive); the last line is "tests: N passed, M failed".
test: test-build
	@UDS_BIN_DIR=$(UDS_BIN_DIR) scripts/run-tests $(TEST_BINS) -- $(TEST_ARGS)

check:
	$(MAKE) VARIANT=asan test

need-gtest:
	@$(PKG_CONFIG) --exists gtest gmock || { \
	  echo "GoogleTest was not found by pkg-config (package 'gtest')."; \
	  echo "Install it with:  make deps   (or: sudo apt-get install libgtest-dev libgmock-dev pkg-config)"; \
	  exit 1; }

deps:
	@if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
	$$SUDO apt-get update && $$SUDO apt-get install -y --no-install-recommends \
	  g++ clang make pkg-config libgtest-dev libgmock-dev libbenchmark-dev \
	  socat strace python3 procps iproute2 valgrind libclang-rt-dev redis-server gnuplot-nox

# Every C++ source as .clang-format wants it (CI runs this; clang-format -i fixes a file).
format-check:
	@find common tests bench [0-9][0-9]-* solutions -name '*.[ch]pp' -not -path '*/node_modules/*' \
	    2>/dev/null | sort | xargs clang-format --dry-run -Werror && echo "format-check: clean"

clean:
	rm -rf build $(patsubst %.cpp,%,$(PROGRAM_SRCS))

help:
	@echo "make              build every chapter ($(CHAPTER_NUMS))"
	@echo "make run          run every chapter's demo (server + client, both sides labelled)"
	@echo "make run-NN       one chapter's demo, e.g. make run-01"
	@echo "make build-NN     build one chapter (or run make inside its directory)"
	@echo "make test         build and run the tests; last line: tests: N passed, M failed"
	@echo "make test-NN      one chapter's tests (test-common: the helper library's)"
	@echo "                  TEST_ARGS='--gtest_filter=Ch01*' selects tests"
	@echo "                  UDS_BIN_DIR=DIR tests the programs under DIR/NN-name/ instead"
	@echo "make check        the whole suite under AddressSanitizer + UBSan"
	@echo "make check-tsan   the thread tests under ThreadSanitizer"
	@echo "make valgrind     every chapter demo under valgrind (errors, leaks, open descriptors)"
	@echo "make fuzz         each libFuzzer target for FUZZ_SECONDS (default 10)"
	@echo "make soak         bounded soak and fault injection against the servers"
	@echo "make trace-NN     chapter NN's demo under strace, both sides labelled"
	@echo "make demo-check   every demo and trace DEMO_RUNS times (5): lines in the order they happened"
	@echo "make start-NN     copy chapter NN's exercise to mine/NN-name/ (FORCE=1 to start over)"
	@echo "make grade-NN     grade mine/NN-name/ (or STUDENT=DIR); last line: the score"
	@echo "make grade-class-NN CLASS=DIR   grade every student folder in DIR: table + CSV"
	@echo "make starters     regenerate every exercise/ from its reference (starters-check: verify)"
	@echo "make docs-check   links, line links, test names, Mermaid, excerpts, page limits"
	@echo "make format-check every C++ source formatted as .clang-format says"
	@echo "make bench        measurements (BENCH_QUICK=1 for a short run), when bench/ is present"
	@echo "make deps         install the Debian/Ubuntu packages this needs (apt-get)"
	@echo "make clean        remove everything built"
	@echo "CXX=clang++ make  build with clang; V=1 shows whole compiler commands"

# Demos and traces print to one terminal: asked for several (make run-06 run-07), they run one at
# a time, in the order asked for.
ifneq ($(word 2,$(filter run run-% trace-%,$(MAKECMDGOALS))),)
  .NOTPARALLEL:
endif

# A chapter may add its own targets (bench-04, ...) in NN-name/chapter.mk; bench/ adds make bench.
-include $(wildcard [0-9][0-9]-*/chapter.mk) $(wildcard bench/bench.mk)
# Cross-cutting targets (valgrind, fuzz, soak, trace, exercises, grading, docs) live in
# scripts/*.mk.
-include $(wildcard scripts/*.mk)

-include $(COMMON_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(HARNESS_OBJS:.o=.d) \
         $(patsubst %.cpp,$(BUILD)/%.d,$(PROGRAM_SRCS))
