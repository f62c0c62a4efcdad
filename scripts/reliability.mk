# scripts/reliability.mk - the layers of testing beyond make test / make check (see tests/README.md).
#
#   make valgrind              every chapter demo with its programs under valgrind (memcheck:
#                              errors, definite/indirect leaks, descriptors open at exit)
#   make check-tsan            the thread tests under ThreadSanitizer (VARIANT=tsan, build/)
#   make fuzz [FUZZ_SECONDS=N] build the libFuzzer targets (clang++) and run each N seconds
#   make fuzz-build            only build them (build/fuzz/)
#   make soak [SOAK_CYCLES=N]  connect/request/close cycles with SIGKILLed clients, server
#                              restarts, simultaneous starts; bounded in time and count
#   make reliability-help      this list

.PHONY: valgrind check-tsan tsan-test side-build fuzz fuzz-build soak soak-build reliability-help

# Its own build of the release programs (same -O2) with DWARF 4 debug information, in
# build/CXX-vg/bin/: valgrind 3.19 cannot read the DWARF 5 that clang 14 writes by default, and
# the programs next to their sources may come from either compiler.
valgrind:
	$(MAKE) VARIANT=vg side-build
	@VG_BIN_ROOT=$(abspath build/$(notdir $(CXX))-vg/bin) scripts/valgrind-demos

# ---- ThreadSanitizer ------------------------------------------------------------------------
# Less the one kernel-semantics test whose name says threads: it forks and starts a thread in the
# child, which TSan refuses in a child of a multi-threaded process (the test program's signal
# thread) with "starting new threads after multi-threaded fork is not supported".
TSAN_FILTER ?= *Thread*:*thread*:-Ch07Semantics.UmaskIsOneValuePerProcessSharedByItsThreads
check-tsan:
	$(MAKE) VARIANT=tsan tsan-test

# ---- side variants: tsan, vg ------------------------------------------------------------------
# The top Makefile knows release and asan. These two build everything under build/CXX-VARIANT/
# (programs in its bin/), never over the release binaries; so only the targets below may be
# asked for with them.
ifneq ($(filter tsan vg,$(VARIANT)),)
  ifneq ($(filter-out side-build tsan-test,$(or $(MAKECMDGOALS),all)),)
    $(error VARIANT=$(VARIANT) only builds through 'make check-tsan' or 'make valgrind' (asked for: $(or $(MAKECMDGOALS),all)))
  endif
  # CXXFLAGS and LDFLAGS refer to $(SANITIZE) and $(OPT) lazily, so this reaches every compile.
  ifeq ($(VARIANT),tsan)
    SANITIZE := -fsanitize=thread -fno-omit-frame-pointer
    OPT := -O1 -g
  else
    SANITIZE :=
    OPT := -O2 -g -gdwarf-4
  endif
  SIDE_BINROOT := $(BUILD)/bin/
  SIDE_PROGRAMS := $(patsubst %.cpp,$(SIDE_BINROOT)%,$(PROGRAM_SRCS))
  $(SIDE_PROGRAMS): $(SIDE_BINROOT)%: $(BUILD)/%.o $(LIB)
	@mkdir -p $(@D)
	$(CXX) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@
  side-build: $(SIDE_PROGRAMS)
  # halt_on_error: the first data race fails the run (tests also fail on a non-zero exit).
  tsan-test: $(SIDE_PROGRAMS) $(TEST_BINS)
	@TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 $(TSAN_OPTIONS)" \
	  UDS_BIN_DIR=$(abspath $(SIDE_BINROOT)) scripts/run-tests $(TEST_BINS) \
	  -- --gtest_filter='$(TSAN_FILTER)' $(TEST_ARGS)
endif

# ---- libFuzzer --------------------------------------------------------------------------------
FUZZ_CXX ?= clang++
FUZZ_SECONDS ?= 10
FUZZ_BUILD := build/fuzz
FUZZ_SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CXXFLAGS := -std=c++20 -O1 -g $(WARNINGS) -DUDS_SOURCE_ROOT='"$(CURDIR)"'
# A target that needs a chapter's header is built only once that chapter is in the tree.
FUZZ_SRCS := $(filter-out $(if $(wildcard common/beneath.hpp),,tests/fuzz/ch05_%),\
               $(wildcard tests/fuzz/*.cpp))
FUZZ_TARGETS := $(patsubst tests/fuzz/%.cpp,$(FUZZ_BUILD)/%,$(FUZZ_SRCS))
FUZZ_COMMON_OBJS := $(patsubst %.cpp,$(FUZZ_BUILD)/%.o,$(COMMON_SRCS))

$(FUZZ_COMMON_OBJS): $(FUZZ_BUILD)/common/%.o: common/%.cpp
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(CPPFLAGS) $(FUZZ_CXXFLAGS) $(FUZZ_SANITIZE) -fsanitize=fuzzer-no-link \
	  -MMD -MP -c $< -o $@

$(FUZZ_TARGETS): $(FUZZ_BUILD)/%: tests/fuzz/%.cpp $(FUZZ_COMMON_OBJS)
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(CPPFLAGS) $(FUZZ_CXXFLAGS) $(FUZZ_SANITIZE) \
	  -fsanitize=fuzzer -MMD -MP $< $(FUZZ_COMMON_OBJS) -pthread -o $@

fuzz-build: $(FUZZ_TARGETS)

# The driver targets talk to the release binaries, so those are built first.
fuzz: all fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz-all $(FUZZ_TARGETS)

-include $(FUZZ_TARGETS:=.d) $(FUZZ_COMMON_OBJS:.o=.d)

# ---- soak -------------------------------------------------------------------------------------
SOAK_CYCLES ?=
SOAK_BIN := $(BUILD)/soak/soak
$(BUILD)/soak/soak.o: tests/soak/soak.cpp
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@
$(SOAK_BIN): $(BUILD)/soak/soak.o $(LIB)
	$(CXX) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@
soak-build: $(SOAK_BIN)
soak: all soak-build $(BUILD)/tests/ch05
	@SOAK_CYCLES=$(SOAK_CYCLES) UDS_BIN_DIR=$(UDS_BIN_DIR) UDS_TEST_BIN=$(abspath $(BUILD)/tests/ch05) \
	    tests/soak/run $(abspath $(SOAK_BIN))
-include $(BUILD)/soak/soak.d

reliability-help:
	@echo "make valgrind     every chapter demo under valgrind (errors, leaks, open descriptors)"
	@echo "make check-tsan   thread tests under ThreadSanitizer (TSAN_FILTER='$(TSAN_FILTER)')"
	@echo "make fuzz         libFuzzer targets in tests/fuzz/, FUZZ_SECONDS=$(FUZZ_SECONDS) each"
	@echo "make soak         soak and fault injection (SOAK_CYCLES=N overrides the counts)"
