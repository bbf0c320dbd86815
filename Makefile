# Seabox: `make up` starts a single-node cloud, `make test` runs the whole suite, `make bench` measures.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= /var/lib/seabox
LISTEN ?= 127.0.0.1:8470
APT_PKGS := runc runsc conmon tini skopeo umoci nftables iproute2 busybox-static docker-registry debootstrap mount e2fsprogs util-linux zstd postgresql iputils-arping
PYTEST_ARGS ?=
FIGURES ?=

.PHONY: deps up down test bench clean

# Debian packages: install only what is missing, quietly.
deps:
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@$(MAKE) -s --no-print-directory $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

up: deps
	@$(BIN)/seabox admin up --data-dir $(DATA_DIR) --listen $(LISTEN)

down:
	@$(BIN)/seabox admin down --data-dir $(DATA_DIR)

# Root-level suites (runc, netns, nftables) are serialised by one lock. The whole suite runs the unit tests
# (no root, no shared host state) beside them, at a lower priority; PYTEST_ARGS runs what it names, under the lock.
# pytest's exit 5 (nothing collected) counts as a pass.
test: deps
	@ok() { [ $$1 -eq 0 ] || [ $$1 -eq 5 ]; }; \
	if [ -n "$(PYTEST_ARGS)" ]; then \
	  flock /tmp/seabox-root.lock $(BIN)/pytest -q --durations=30 $(PYTEST_ARGS); rc=$$?; ok $$rc; exit $$?; \
	fi; \
	log=$$(mktemp); \
	nice -n 10 $(BIN)/pytest -q -p no:cacheprovider tests/unit > $$log 2>&1 & unit=$$!; \
	flock /tmp/seabox-root.lock $(BIN)/pytest -q --durations=30 --ignore=tests/unit; rc=$$?; \
	wait $$unit; urc=$$?; echo "--- tests/unit, run alongside:"; \
	if ok $$urc; then tail -n 1 $$log; else cat $$log; fi; rm -f $$log; \
	ok $$rc && ok $$urc

bench: deps
	@flock /tmp/seabox-root.lock $(BIN)/python -m bench $(FIGURES)

clean:
	rm -rf $(VENV) build *.egg-info
