#!/usr/bin/env bash
# Run the process-spawning tests N times while the machine is loaded, to catch flaky ones.
#
#   bash scripts/stress-tests.sh [N] [pytest arguments or test files...]
#
# N defaults to 20. While the runs go, one busy loop per CPU keeps every core loaded (as a
# CI machine running other jobs is). Each run's pytest output goes to
# $STRESS_DIR/run-I.log (default: a fresh folder under /tmp) with a JUnit XML beside it; the
# summary names the failing tests of each run. Exit status: 0 if every run passed.
#
# Environment: PYTHON (default .venv/bin/python, else python3), STRESS_DIR, LOAD (busy loops,
# default: the number of CPUs).
set -u
cd "$(dirname "$0")/.."

runs=${1:-20}
[ $# -gt 0 ] && shift
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
    tests=(tests/test_cli*.py tests/test_checkpoint.py tests/test_distributed.py
           tests/test_folderlock.py tests/test_atomic.py)
fi
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
out=${STRESS_DIR:-$(mktemp -d /tmp/aekit-stress.XXXXXX)}
mkdir -p "$out"
load=${LOAD:-$(nproc 2>/dev/null || echo 2)}

burners=()
stop_load() {
    for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null; done
    wait "${burners[@]}" 2>/dev/null
}
trap stop_load EXIT
trap 'exit 130' INT TERM
for _ in $(seq "$load"); do
    "$python" -c "while True: pass" &
    burners+=($!)
done
echo "stress: $runs runs of ${tests[*]}, $load busy loops (pids ${burners[*]}), logs in $out"

failed_runs=0
for i in $(seq "$runs"); do
    start=$(date +%s)
    PYTHONPATH=src "$python" -m pytest -q -p no:cacheprovider -rf \
        --junitxml="$out/run-$i.xml" "${tests[@]}" >"$out/run-$i.log" 2>&1
    code=$?
    summary=$(tail -n 1 "$out/run-$i.log")
    echo "run $i/$runs: exit $code, $(( $(date +%s) - start )) s: $summary"
    if [ $code -ne 0 ]; then
        failed_runs=$((failed_runs + 1))
        grep -E '^(FAILED|ERROR) ' "$out/run-$i.log" | sed 's/^/    /'
    fi
done
echo "stress: $failed_runs of $runs runs failed; logs in $out"
[ $failed_runs -eq 0 ]
