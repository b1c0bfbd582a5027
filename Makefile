# mmg-cosim: `make demo` runs the default scenario, `make test` the test suite. Both set up .venv first,
# from uv.lock (uv sync --frozen), with the Python >= 3.12 that .ci/find-python finds.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9
# uv from the PATH, else a pinned copy from PyPI in .tools/ (installed on first use).
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
FIND_PYTHON := .ci/find-python

.PHONY: demo test test-slow test-latest lint format lock bench bench-rolling venv clean

venv: $(STAMP)

.tools/bin/uv:
	$$($(FIND_PYTHON)) -m venv .tools
	.tools/bin/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet --compile-bytecode --python "$$($(FIND_PYTHON))"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mmg-cosim run ieee33_3mg --strategy rule_based --days 1
	$(VENV)/bin/mmg-cosim report results/ieee33_3mg-rule_based.h5 --plots results/plots

test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadgroup --durations=15

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# The newest versions the pyproject ranges allow, in a venv of their own (not CI): drift shows here first.
test-latest: | $(UV)
	rm -rf .venv-latest
	$(UV) venv --quiet .venv-latest --python "$$($(FIND_PYTHON))"
	$(UV) pip install --quiet --compile-bytecode --python .venv-latest/bin/python --upgrade -e . --group dev
	$(UV) pip list --python .venv-latest/bin/python | grep -iE '^(highspy|mosaik|pandapower|pyomo|numpy|pandas|lightsim2grid) ' || true
	.venv-latest/bin/python -m pytest -q -n auto --dist loadgroup -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Refresh uv.lock to the newest versions the pyproject ranges allow.
lock: | $(UV)
	$(UV) lock --upgrade --python "$$($(FIND_PYTHON))"

bench: $(STAMP)
	$(PY) tests/bench/bench_grid.py
	$(PY) tests/bench/bench_recorder.py
	$(PY) tests/bench/bench_runs.py
	$(PY) tests/bench/bench_milp.py
	$(PY) tests/bench/bench_crypto.py
	$(PY) tests/bench/bench_admm_qp.py
	$(PY) tests/bench/bench_admm.py --mgs 10
	$(PY) tests/bench/bench_sweep.py
	$(PY) tests/bench/bench_grid_large.py

bench-rolling: $(STAMP)
	$(PY) tests/bench/bench_runs.py --strategy centralized --set ems.rolling=true --days 1 365

clean:
	rm -rf $(VENV) .venv-latest .tools results/*.h5 results/plots
