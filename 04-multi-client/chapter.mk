# Chapter 04's own targets (included by the top Makefile).
#   make bench-04         each model at 1, 10, 100, 1000 clients, plus the chapter's targets
#   make bench-04-quick   the same, smaller (about 20 s)
.PHONY: bench-04 bench-04-quick
bench-04: build-04
	04-multi-client/bench
bench-04-quick: build-04
	04-multi-client/bench --quick

# Chapter 04's tests compare the iterative server of chapter 01 with this chapter's.
test-04: $(filter $(BINROOT)01-%,$(RUN_PROGRAMS))
