# The two commands of the README. Each installs what it needs first (scripts/setup.sh).
PY := .venv/bin/python
LAMINA := .venv/bin/lamina
JOBS ?= 2

.PHONY: setup demo test bench clean soak fuzz

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	$(PY) -m pytest -n $(JOBS) -q tests

bench: setup
	$(PY) bench/run.py $(BENCH_ARGS)

# Issue 9 at full size: 200 kill -9 trials, and long fuzzing (atheris when it installs).
soak: setup
	LAMINA_SOAK_TRIALS=$${LAMINA_SOAK_TRIALS:-200} $(PY) -m pytest -q -s -p no:cacheprovider tests/soak

fuzz: setup
	@bash fuzz/run.sh

clean:
	rm -rf .venv build src/*.egg-info .pytest_cache .hypothesis
