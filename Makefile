# Two entry points (see README): `make demo` runs the main job, `make test` the tests.
# Both create .venv on first use and install equiprop into it with torch pinned.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-lock.txt
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# Train an SO3Net on the shipped PBE0 water clusters (charges, dipole, energy, forces) for
# 150 s of training, then evaluate on the held-out split: runs/demo/{metrics.csv,summary.md,parity_*.png}
demo: install
	$(PY) -m equiprop train --out runs/demo --overwrite --epochs 200 --max-time 150

test: install
	$(PY) -m pytest -q
