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

demo: install
	$(PY) -m equiprop demo

test: install
	$(PY) -m pytest -q
