# scripts/teach.mk - the teaching layer: traces, exercises, grading.
#
#   make trace-01                the chapter 01 demo under strace (both sides labelled)
#   make start-01 [FORCE=1]      copy chapter 01's starter to mine/01-stream-path/
#   make grade-01 [STUDENT=DIR]  build mine/01-stream-path (or DIR) and grade it: step tests
#                                first, one reason line under each FAIL, the score last
#   make grade-class-01 CLASS=DIR   grade every folder in DIR (one per student): a table on the
#                                terminal and build/grade/01/class.csv
#   make starters                regenerate NN-name/exercise/ from the reference's //@ markers
#   make starters-check          fail when a checked-in starter is not what its reference makes
#   make exercises               build every starter (it must compile, with our warnings)

.PHONY: exercises starters starters-check $(addprefix trace-,$(CHAPTER_NUMS)) \
        $(addprefix start-,$(CHAPTER_NUMS)) $(addprefix grade-,$(CHAPTER_NUMS)) \
        $(addprefix grade-class-,$(CHAPTER_NUMS))

EXERCISE_SRCS := $(wildcard $(addsuffix /exercise/*.cpp,$(CHAPTERS)))
EXERCISES := $(patsubst %.cpp,$(BUILD)/%,$(EXERCISE_SRCS))

exercises: $(EXERCISES)

# Starters compile with the same warnings as everything else (they only lack the steps).
$(EXERCISES): $(BUILD)/%: $(BUILD)/%.o $(LIB)
	$(call say,LD,$@)
	$(Q)$(CXX) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

starters:
	@scripts/make-starter

starters-check:
	@scripts/make-starter --check
	@$(MAKE) --no-print-directory exercises

STUDENT ?=
CLASS ?=
GRADE_ENV = GRADE_CXX="$(CXX)" GRADE_CPPFLAGS="$(CPPFLAGS)" GRADE_LIBS="$(abspath $(LIB)) $(LDLIBS)"

define teach_rules
trace-$(1): $(filter $(BINROOT)$(1)-%,$(RUN_PROGRAMS))
	@command -v strace >/dev/null || { echo "trace-$(1): strace is not installed (make deps, or: sudo apt-get install strace)"; exit 1; }
	@UDS_TRACE=1 scripts/run-demo $(1)

start-$(1):
	@FORCE=$$(FORCE) scripts/start $(1)

grade-$(1): $(LIB) $(BUILD)/tests/ch$(1) $(filter $(BINROOT)$(1)-%,$(RUN_PROGRAMS))
	@$(GRADE_ENV) GRADE_TEST_BIN=$(abspath $(BUILD)/tests/ch$(1)) scripts/grade $(1) "$$(STUDENT)"

grade-class-$(1): $(LIB) $(BUILD)/tests/ch$(1) $(filter $(BINROOT)$(1)-%,$(RUN_PROGRAMS))
	@$(GRADE_ENV) GRADE_TEST_BIN=$(abspath $(BUILD)/tests/ch$(1)) scripts/grade-class $(1) "$$(CLASS)"
endef
$(foreach n,$(CHAPTER_NUMS),$(eval $(call teach_rules,$(n))))

# A starter's own headers (04-multi-client/exercise/model_*.hpp) must rebuild it when they change.
-include $(patsubst %.cpp,$(BUILD)/%.d,$(EXERCISE_SRCS))

# The grader, tested: every reference full, every untouched starter low (its first FAIL a step
# test), every worked solution full, each within the time promised (scripts/check-grades).
.PHONY: grades-check
grades-check: $(LIB) $(addprefix $(BUILD)/tests/ch,$(CHAPTER_NUMS)) $(RUN_PROGRAMS)
	@scripts/check-grades

# Demos and traces print every line in the order it happened: each chapter's make run-NN and
# make trace-NN, DEMO_RUNS times each (default 5), checked against per-chapter order rules.
.PHONY: demo-check
DEMO_RUNS ?= 5
demo-check: $(RUN_PROGRAMS)
	@scripts/check-demo-order -n $(DEMO_RUNS)
