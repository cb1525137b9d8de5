# The two commands of the README. Each installs what it needs first (scripts/setup.sh).
PY := .venv/bin/python
LAMINA := .venv/bin/lamina
JOBS ?= 2

.PHONY: setup demo test bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	$(PY) -m pytest -n $(JOBS) -q tests

bench: setup
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf .venv build src/*.egg-info .pytest_cache .hypothesis
