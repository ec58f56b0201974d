# Two commands do all set-up on a fresh machine: `make demo` and `make test`; `make test-fast` while working.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sleepstream-installed

.PHONY: install test test-fast demo bench docs clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The whole suite on $(TEST_WORKERS) xdist workers: most LSL and process tests wait on the wall
# clock, so more workers than cores pay; tests that share an expensive fixture stay on one
# worker (tests/conftest.py, --dist loadgroup).
TEST_WORKERS ?= 4
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

# While working: the tests that open no LSL stream, start no process and are not slow.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not lsl and not slow"

demo: $(STAMP)
	$(VENV)/bin/sleepstream demo

bench: $(STAMP)
	$(PY) -m pip install -q -c constraints.txt -e '.[test,bench]'
	$(PY) -m benchmarks.run_all

# The documentation site, warnings as errors; its packages come with the test extra (or `docs`).
docs: $(STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache docs/_build docs/api/generated docs/models/generated
