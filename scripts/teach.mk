# scripts/teach.mk - the teaching layer: traces, exercises, grading.
#
#   make trace-01                the chapter 01 demo under strace (both sides labelled)
#   make exercises               build every chapter's exercise starter (it must compile)
#   make grade-01 STUDENT=DIR    build DIR/server.cpp + DIR/client.cpp (or take DIR/server and
#                                DIR/client as they are) and run chapter 01's tests against them

.PHONY: exercises $(addprefix trace-,$(CHAPTER_NUMS)) $(addprefix grade-,$(CHAPTER_NUMS))

EXERCISE_SRCS := $(wildcard $(addsuffix /exercise/*.cpp,$(CHAPTERS)))
EXERCISES := $(patsubst %.cpp,$(BUILD)/%,$(EXERCISE_SRCS))

exercises: $(EXERCISES)

# Starters compile with the same warnings as everything else (they only lack the calls).
$(EXERCISES): $(BUILD)/%: $(BUILD)/%.o $(LIB)
	$(CXX) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

# (the exercises are built by make exercises and make starters-check)

define teach_rules
trace-$(1): build-$(1)
	@command -v strace >/dev/null || { echo "trace-$(1): strace is not installed (make deps, or: sudo apt-get install strace)"; exit 1; }
	@UDS_TRACE=1 scripts/run-demo $(1)

grade-$(1): $(LIB) $(TEST_BIN)
	@scripts/grade $(1) "$$(STUDENT)" "$(CXX)" "$(CPPFLAGS) $(CXXFLAGS)" "$(LDFLAGS)" "$(LIB) $(LDLIBS)" "$(TEST_BIN)" "$(BUILD)"
endef
$(foreach n,$(CHAPTER_NUMS),$(eval $(call teach_rules,$(n))))

# A starter's own headers (04-multi-client/exercise/model_*.hpp) must rebuild it when they change.
-include $(patsubst %.cpp,$(BUILD)/%.d,$(EXERCISE_SRCS))
