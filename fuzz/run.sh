#!/bin/bash
# make fuzz: the atheris harnesses for FUZZ_SECONDS each when atheris installs, else (it
# needs clang's libFuzzer to build) the hypothesis fuzz tests with a large max_examples.
# Both print their figures at the end.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SECONDS_EACH=${FUZZ_SECONDS:-120}
EXAMPLES=${LAMINA_FUZZ_EXAMPLES:-20000}
status=0
SCRATCH=$(mktemp -d /tmp/lamina-fuzz-XXXXXX)
mount -t tmpfs -o size=64m tmpfs "$SCRATCH"
trap 'umount -l "$SCRATCH"; rmdir "$SCRATCH"' EXIT
export LAMINA_FUZZ_SCRATCH=$SCRATCH
if $PY -c "import atheris" 2>/dev/null || $PY -m pip install -q atheris; then
    for harness in reference manifest dockerfile layer; do
        corpus=fuzz/corpus/$harness
        mkdir -p "$corpus"
        echo "== atheris: fuzz_$harness.py for ${SECONDS_EACH}s (log: fuzz/logs/$harness.log)"
        mkdir -p fuzz/logs
        if (cd fuzz && PYTHONPATH=. ../$PY fuzz_$harness.py -max_total_time="$SECONDS_EACH" \
                -print_final_stats=1 "../$corpus" > "logs/$harness.log" 2>&1); then
            grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "fuzz/logs/$harness.log"
        else
            status=1
            tail -30 "fuzz/logs/$harness.log"
        fi
    done
else
    echo "atheris did not install (it builds against clang's libFuzzer): running the" \
         "hypothesis fuzz tests with max_examples=$EXAMPLES instead"
fi
echo "== hypothesis: tests/unit/test_fuzz_*.py with max_examples=$EXAMPLES"
LAMINA_HYPOTHESIS=explore LAMINA_FUZZ_EXAMPLES=$EXAMPLES $PY -m pytest -q -s -p no:cacheprovider tests/unit/test_fuzz_*.py \
    || status=1
exit $status
