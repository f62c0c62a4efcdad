# Chapter 06's own targets (included by the top Makefile).
#   make bench-06   a 64 MiB result from the monitor to its worker: copied through the socket
#                   pair, or passed as a sealed memfd and mapped (time, RSS; same-run ratios)
.PHONY: bench-06
bench-06: $(BINROOT)06-socketpair/bench
	$(BINROOT)06-socketpair/bench

# make soak runs ReliabilityCh06 from the chapter 06 test program (tests/soak/run).
soak: $(BUILD)/tests/ch06
