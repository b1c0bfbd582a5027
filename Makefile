# mmg-cosim: `make demo` runs the default scenario, `make test` the test suite. Both create .venv first.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench bench-rolling venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $$(.ci/find-python) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mmg-cosim run ieee33_3mg --strategy rule_based --days 1
	$(VENV)/bin/mmg-cosim report results/ieee33_3mg-rule_based.h5 --plots results/plots

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) tests/bench/bench_grid.py
	$(PY) tests/bench/bench_recorder.py
	$(PY) tests/bench/bench_runs.py
	$(PY) tests/bench/bench_milp.py
	$(PY) tests/bench/bench_crypto.py

bench-rolling: $(STAMP)
	$(PY) tests/bench/bench_runs.py --strategy centralized --set ems.rolling=true --days 1 365

clean:
	rm -rf $(VENV) results/*.h5 results/plots
