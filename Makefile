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

# Root-level suites (runc, netns, nftables) are serialised by one lock.
test: deps
	@flock /tmp/seabox-root.lock $(BIN)/pytest -q --durations=30 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

bench: deps
	@flock /tmp/seabox-root.lock $(BIN)/python -m bench $(FIGURES)

clean:
	rm -rf $(VENV) build *.egg-info
