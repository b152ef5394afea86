# Two commands on a fresh machine: `make demo` (the seeds' runs on built-in data) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.gradfit-installed

.PHONY: demo test test-slow lint install bench clean

install: $(STAMP)

# torch is installed first, pinned, when the environment has none: an unpinned torch would pull a
# multi-GB CUDA build, while 2.13.0 is the CPU wheel this project is developed against.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gradfit demo linear
	$(VENV)/bin/gradfit demo rollercoaster

# The linter, the formatter's check, the import layers and the type checker first (seconds once mypy has its cache): a finding
# fails `make test` before the tests run. tests/test_quality.py runs them too, for a bare `pytest`.
test: lint
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy src

# The generated corpora and the 10^6-row memory checks (minutes): CI runs them after `make test`.
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# Issue 11's ratio table, gradfit against its peers (about 5 minutes a table): one thread first, then the default
# threads. Each table is also written as JSON (bench-1-thread.json, bench-default-threads.json).
bench: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) bench/run.py --json bench-1-thread.json
	$(PY) bench/run.py --json bench-default-threads.json

clean:
	rm -rf $(VENV) gradfit-out .pytest_cache .mypy_cache .ruff_cache bench-1-thread.json bench-default-threads.json
