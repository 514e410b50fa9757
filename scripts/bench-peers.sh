#!/usr/bin/env bash
# Make the venvs of the peers `python -m bench crash` measures setpoint's supervisor against
# (supervisord and circus, from PyPI), and print the variables that point the bench at them:
#   eval "$(scripts/bench-peers.sh [DIR])"
set -euo pipefail
dir="${1:-${TMPDIR:-/tmp}/setpoint-bench-peers}"
python="${PYTHON:-python3}"
for peer in supervisor circus; do
    if [ ! -x "$dir/$peer/bin/python" ]; then
        "$python" -m venv "$dir/$peer" >&2
    fi
    "$dir/$peer/bin/pip" install --quiet --disable-pip-version-check "$peer" >&2
done
echo "export SETPOINT_BENCH_SUPERVISORD_VENV=$dir/supervisor"
echo "export SETPOINT_BENCH_CIRCUS_VENV=$dir/circus"
