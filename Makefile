# Two commands on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: run test test-all venv clean

# torch==2.13.0 first: pip takes the CPU wheel lying on disk instead of a multi-GB CUDA build.
$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install -e .
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PIP) install -e '.[test]'
	touch $@

venv: $(VENV)/.base

run: $(VENV)/.base
	$(VENV)/bin/dwm-net launch --agents 2 --scenario 2s_vs_1sc --beta 0.01

test: $(VENV)/.test
	$(PY) -m pytest

test-all: $(VENV)/.test
	$(PY) -m pytest -m ''

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
