# Chapter 05's own targets (included by the top Makefile).
.PHONY: bench-05
bench-05: 05-sendmsg-fds/bench  ## pass a descriptor vs stream the bytes, 1 KiB .. 1 GiB
	05-sendmsg-fds/bench
