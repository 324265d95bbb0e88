# Two commands do all set-up on a fresh machine (Python 3.11 and make are all they need):
#   make demo   installs into .venv, then runs the demo sweep
#   make test   installs into .venv (with test tools and the MiniLM task), then runs the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint browser postgres gpu-wheels

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first: anything that pulls an unpinned torch gets a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,minilm,ui,cluster,kernels,openvino]'
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/slimsweep run

test: $(INSTALLED) browser postgres
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Debian's chromium renders the report in a test; installed when we are root with apt-get,
# otherwise that one test is skipped (outside CI).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium is not installed: the report rendering test will be skipped"

# Debian's PostgreSQL holds a study in the shared-state tests (each starts its own throwaway
# server on 127.0.0.1); installed like chromium, otherwise those tests are skipped (outside CI).
postgres:
	@command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } \
		|| echo "PostgreSQL is not installed: the shared-state tests will be skipped"

lint: $(INSTALLED)
	$(BIN)/ruff check .

# The pure-Python wheels tests/gpu needs beside a CUDA image's own torch (see tests/gpu/run.sh):
# built here, where pip reaches PyPI, and copied with the checkout to a GPU machine.
gpu-wheels: $(INSTALLED)
	$(BIN)/pip wheel --quiet --no-deps -w .gpu-wheels hydra-core==1.3.8 omegaconf==2.3.1 \
		antlr4-python3-runtime==4.9.3 torch-pruning==1.6.1
