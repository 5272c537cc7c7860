# patchctl developer entry points. Every target exits non-zero on failure.
#   make test   on a fresh Debian 12 machine as root: system packages, venv, collections, lint, tests
#   make demo   the same set-up, then a 6-host lab and the story of waves and bake (tools/demo.sh)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMPS := .make
CACHE  ?= $(HOME)/.cache/patchctl/wheels

# System packages the lab and the tests need (Debian 12). python3-venv: `python3.11 -m venv`;
# rpm (rpmbuild), createrepo-c: the RPM repository of the lab's dnf and zypper hosts.
# postgresql: the PostgreSQL store's tests run against a cluster of this checkout (tools/pg.sh).
# systemd: systemd-analyze verifies the units `patchctl schedule --systemd` writes (tests fail without it).
# tmux: a real terminal for the live progress display's test (tests/integration/test_progress_tty_lab.py).
DEB_PACKAGES := debootstrap openssh-server openssh-client apt-utils zstd sqlite3 gnupg python3-venv rpm createrepo-c chromium \
                postgresql systemd tmux

LINT_PATHS := patchctl plugins tests tools bench setup.py

# Molecule and ansible-lint start ansible-* tools from PATH. ANSIBLE_HOME makes Molecule keep its
# ephemeral directories (and so each scenario's lab) in this checkout's .ansible/, apart from
# other checkouts. SCENARIO=name runs one scenario (`make molecule SCENARIO=patch_scan_linux`).
TOOLS_ENV    := PATH="$(CURDIR)/$(BIN):$$PATH"
MOLECULE_ENV := $(TOOLS_ENV) ANSIBLE_HOME="$(CURDIR)/.ansible"
SCENARIO  ?=

.PHONY: help deps venv collections lint molecule test demo docs clean distclean pg pg-stop mutation

help:
	@echo "make deps         system packages (root, Debian 12; quick when already installed)"
	@echo "make venv         $(VENV) with patchctl installed editable, with the test extras"
	@echo "make collections  the pinned Ansible collections into .collections (no Galaxy)"
	@echo "make lint         ruff, mypy, ansible-lint, yamllint, ignores with reasons, import-linter layers, vulture"
	@echo "make pg           start this checkout's PostgreSQL test cluster (tools/pg.sh; pg-stop stops it)"
	@echo "make docs         the documentation site into site/ (mkdocs, strict: broken links or anchors fail)"
	@echo "make molecule     every Molecule scenario's full sequence on lab hosts (SCENARIO=name: one)"
	@echo "make mutation     mutmut over the rules modules with their unit tests (by hand; docs/mutation.md)"
	@echo "make test         deps + venv + collections, lint, docs, pytest tests/, then make molecule"
	@echo "make demo         deps + venv + collections, then lab up (6 hosts) and tools/demo.sh: scan, waves, report"
	@echo "make clean        build outputs and tool caches (distclean: also .venv, .collections)"

# ---- system packages -------------------------------------------------------------------------
deps: $(STAMPS)/deps

$(STAMPS)/deps: Makefile
	@mkdir -p $(STAMPS)
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "make deps: missing Debian packages:$$missing (run 'make deps' as root)" >&2; exit 1; \
	  fi; \
	  echo "make deps: installing$$missing"; \
	  policy_rc=""; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; \
	    policy_rc=1; \
	  fi; \
	  trap '[ -z "$$policy_rc" ] || rm -f /usr/sbin/policy-rc.d' EXIT; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq; \
	  apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

# ---- Python ----------------------------------------------------------------------------------
venv: $(STAMPS)/venv

$(STAMPS)/venv: setup.cfg setup.py pyproject.toml | $(STAMPS)/deps
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

# ---- Ansible collections ---------------------------------------------------------------------
# Idempotent and quick when the pinned versions are in place, so it always runs.
collections: venv
	$(BIN)/python tools/install_collections.py --target .collections --cache-dir $(CACHE)

# ---- checks ----------------------------------------------------------------------------------
lint: venv collections
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/mypy
	$(TOOLS_ENV) $(BIN)/ansible-lint --offline --profile production
	$(BIN)/yamllint --strict .
	$(BIN)/python tools/check_lint_ignores.py
	$(BIN)/lint-imports
	$(BIN)/vulture

# Mutation testing, by hand (not part of make test): mutmut over the rules modules with their unit
# tests ([tool.mutmut] in pyproject.toml; its working copy in mutants/); the surviving mutants per
# module are recorded in docs/mutation.md. `mutmut show NAME` prints one.
mutation: venv
	rm -rf mutants
	$(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

# Each lab scenario: destroy, syntax, create (its own lab), prepare, converge, idempotence,
# verify, destroy (see .config/molecule/config.yml); needs root, like the lab. One scenario
# after the other, all of them even when one fails (`molecule test --all` stops at the first).
SCENARIOS = $(or $(SCENARIO),$(sort $(patsubst molecule/%/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))

molecule: deps venv collections
	@failed=""; \
	for s in $(SCENARIOS); do \
	  start=$$(date +%s); \
	  $(MOLECULE_ENV) $(BIN)/molecule test --scenario-name "$$s" || failed="$$failed $$s"; \
	  echo "make molecule: $$s took $$(( $$(date +%s) - start ))s"; \
	done; \
	if [ -n "$$failed" ]; then echo "make molecule: failed:$$failed" >&2; exit 1; fi

# A PostgreSQL cluster of this checkout's own (.pg/, 127.0.0.1, a port of its own): the store's
# tests run against SQLite and against it (tests/unit/conftest.py reads .pg/url).
pg: deps
	tools/pg.sh start

pg-stop:
	tools/pg.sh stop

# The documentation site: the README is its home page (tools/docs_index.py), docs/ its pages;
# strict, so a broken link, a missing anchor or a page left out of the nav fails the build.
docs: venv
	$(BIN)/python tools/docs_index.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# pytest's exit 5 (no test collected) fails the target like any other non-zero exit.
test: deps venv collections pg
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory docs
	$(BIN)/python -m pytest tests/
	$(MAKE) --no-print-directory molecule

# The whole story of waves and bake (README "Waves and bake"): lab up (6 hosts), scan, approve,
# rollout, pilot wave, a refused early promotion, promotion after the bake, fleet wave, report.
demo: deps venv collections
	PATCHCTL=$(BIN)/patchctl tools/demo.sh

clean:
	rm -rf build dist *.egg-info patchctl.egg-info .pytest_cache .mypy_cache .ruff_cache site docs/index.md mutants
	find . -path ./.venv -prune -o -path ./.collections -prune -o \
	  -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .collections $(STAMPS)
