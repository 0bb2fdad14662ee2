#!/usr/bin/env bash
# The torch backend on a GPU machine, in one run of under six minutes: install what is
# missing (never replacing the machine's torch), run the CUDA tests, time
# `convkit bench --device cuda --quick`, measure the CUDA cost model without storing it.
#
#   benchmarks/gpu_check.sh LOGDIR
#
# Run from anywhere, on a machine that has torch with CUDA. Environment:
#   PYTHON   the interpreter whose torch to use (default: python3)
#   WHEELS   a folder of wheels to install from when the machine has no package index
#            (`pip download` them elsewhere for the machine's Python and platform)
# LOGDIR receives env.txt, install.log, pytest-cuda.log, bench-cuda.log (and .json),
# calibrate.log and summary.txt (each step's exit status and seconds). A failing step is
# recorded and the next one runs; the script exits non-zero if any step failed.
set -u
LOG=${1:?usage: benchmarks/gpu_check.sh LOGDIR}
PY=${PYTHON:-python3}
WHEELS=${WHEELS:-}
mkdir -p "$LOG"
LOG=$(cd "$LOG" && pwd)  # the caller's LOGDIR, before moving to the checkout
cd "$(dirname "$0")/.."
: > "$LOG/summary.txt"
failed=0

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log, record status
    local name=$1 limit=$2 start=$SECONDS rc
    shift 2
    timeout "$limit" "$@" > "$LOG/$name.log" 2>&1
    rc=$?
    printf '%-14s rc=%-3s %4ss\n' "$name" "$rc" "$((SECONDS - start))" >> "$LOG/summary.txt"
    [ "$rc" -eq 0 ] || failed=1
    return 0
}

probe() {  # the machine: GPUs, Python, torch
    date -u
    nvidia-smi || echo "nvidia-smi: not found"
    "$PY" -c '
import sys, torch
print("python", sys.version.split()[0])
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
for i in range(torch.cuda.device_count()):
    print(f"cuda:{i}", torch.cuda.get_device_name(i))
'
}

install_missing() {
    # the machine's torch stays: every install is constrained to its version
    local constraints
    constraints=$(mktemp)
    "$PY" -c 'import torch; print("torch==" + torch.__version__.split("+")[0])' > "$constraints"
    local pip=("$PY" -m pip install --disable-pip-version-check -c "$constraints")
    if [ -n "$WHEELS" ]; then
        pip+=(--no-index --find-links "$WHEELS")
    fi
    # what the CUDA tests import, by module name and the distribution that provides it
    local missing
    missing=$("$PY" -c '
import importlib.util
import torch
need = {
    "numpy": "numpy", "scipy": "scipy", "pluggy": "pluggy", "threadpoolctl": "threadpoolctl",
    "tqdm": "tqdm", "array_api_compat": "array-api-compat", "pytest": "pytest",
    "hypothesis": "hypothesis", "setuptools": "setuptools", "soundfile": "soundfile",
    "torchaudio": "torchaudio==" + torch.__version__.split("+")[0],
}
print(" ".join(dist for mod, dist in need.items() if importlib.util.find_spec(mod) is None))
')
    echo "missing: ${missing:-nothing}"
    local dist status=0
    for dist in $missing; do  # one at a time: one that cannot be had stops no other
        "${pip[@]}" "$dist" || { echo "could not install $dist"; status=1; }
    done
    # convkit itself, from this checkout, without resolving anything again
    "${pip[@]}" --no-deps --no-build-isolation -e . || "${pip[@]}" --no-deps -e . || status=1
    "$PY" -m convkit backends || status=1
    return "$status"
}

export PY WHEELS
# time limits: 20 + 60 + 100 + 120 + 60 s, under six minutes in all
step env 20 bash -c "$(declare -f probe); probe"
step install 60 bash -c "$(declare -f install_missing); install_missing"
# a test module whose optional library is missing here is reported, not fatal
step pytest-cuda 100 "$PY" -m pytest -p no:cacheprovider -q -rs -m cuda \
    --continue-on-collection-errors tests
step bench-cuda 120 "$PY" -m convkit bench --device cuda --quick --json "$LOG/bench-cuda.json"
step calibrate 60 "$PY" -m convkit calibrate --backend torch --dry-run
cat "$LOG/summary.txt"
exit "$failed"
