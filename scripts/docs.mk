# scripts/docs.mk - text that cannot go stale (scripts/docs/README.md tells the rules).
#
#   make docs-check            every check: test names, line links, links and anchors, Mermaid,
#                              excerpts (runs the demos they quote), lesson page limits
#   make docs-check DOCS_CHECK_ARGS=--skip-excerpts   the same without running the demos
#   make docs-fix-lines        move line links whose text now sits on another line
#   make docs-excerpts         regenerate stale excerpts from what the programs print now
#   make docs-deps             install the pinned Mermaid parser (npm ci, into scripts/docs/)
#   make docs-check-selftest   show that each check catches what it should
#   make docs-translation-status [PAGES=X.md...]   for translators: each page's Chinese twin,
#                              whether it is current, and what changed in English since

DOCS_CHECK ?= scripts/docs-check
DOCS_CHECK_ARGS ?=

.PHONY: docs-check docs-fix-lines docs-excerpts docs-deps docs-check-selftest \
        docs-translation-status

docs-check:
	@$(DOCS_CHECK) $(DOCS_CHECK_ARGS)

docs-fix-lines:
	@$(DOCS_CHECK) --fix-lines

docs-excerpts:
	@$(DOCS_CHECK) --excerpts

docs-deps:
	@command -v npm >/dev/null || { echo "docs-deps: npm is not installed (apt-get install nodejs npm)"; exit 1; }
	npm ci --prefix scripts/docs --no-audit --no-fund

docs-check-selftest:
	@$(DOCS_CHECK) --selftest

docs-translation-status:
	@$(DOCS_CHECK) --translation-status $(PAGES)
