#!/usr/bin/env bash
# The GPU path in one command, for an offline GPU box with JAX and PyTorch (with CUDA) and no
# TensorFlow: install mnist-tui from wheels/ (tools/make_wheels.sh) into a venv that reuses the
# box's JAX and PyTorch, then on each backend run the GPU tests (pytest -m gpu), `train --preset
# fast` with and without --mixed-precision, `--preset fast-gpu --mixed-precision` (its training
# seconds against the goal of under 1 s), and the time-to-accuracy benchmark against the
# original script, and print a Markdown table for the README. Without a GPU the same steps run
# on the CPU (fast-gpu excepted: there it would only repeat fast), and the table says so. Each
# step has a time limit; a failed step is a row, not the end of the check.
#
# Usage: tools/device_check.sh [MNIST_NPZ]
#   MNIST_NPZ: default ../shared/data/mnist.npz, else ./mnist.npz
#   PYTHON=...      the interpreter whose packages are reused (default python3)
#   ENV_PYTHON=...  an environment that already has mnist-tui's dependencies: no install
#   BACKENDS="jax torch"  the Keras backends to check
set -uo pipefail

cd "$(dirname "$0")/.."
root=$PWD
# The checkout is what is checked: its code before any installed copy.
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
started=$(date +%s)

data="${1:-}"
for candidate in "$data" ../shared/data/mnist.npz ./mnist.npz; do
    if [ -n "$candidate" ] && [ -f "$candidate" ]; then data=$(realpath "$candidate"); break; fi
done
if [ -z "$data" ] || [ ! -f "$data" ]; then
    echo "device_check: no MNIST npz: pass its path, or carry it as ../shared/data/mnist.npz or ./mnist.npz." >&2
    exit 2
fi

work=$(mktemp -d -t mnist-tui-check-XXXXXX)
log="$work/check.log"
echo "device_check: data $data; logs in $log" >&2

# --- the environment ------------------------------------------------------------------------
if [ -n "${ENV_PYTHON:-}" ]; then
    py="$ENV_PYTHON"
    echo "device_check: using $py as it is (no install)" >&2
else
    if [ ! -d wheels ]; then
        echo "device_check: no wheels/ folder; make it with tools/make_wheels.sh where there is a network." >&2
        exit 2
    fi
    "${PYTHON:-python3}" -m venv --system-site-packages "$work/venv"
    py="$work/venv/bin/python"
    "$py" -m pip install --quiet --no-index --find-links wheels --no-deps wheels/mnist_tui-*.whl >>"$log" 2>&1 &&
        "$py" -m pip install --quiet --no-index --find-links wheels \
            keras textual textual-plotext plotext rich msgspec tomli-w optuna \
            pytest pytest-asyncio hypothesis >>"$log" 2>&1 ||
        { echo "device_check: installing from wheels/ failed; see $log" >&2; tail -5 "$log" >&2; exit 1; }
fi

# --- the machine ----------------------------------------------------------------------------
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
    driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)
    machine="$gpu, driver $driver"
else
    gpu=""
    cores=$(nproc)
    machine="no GPU visible: CPU only ($cores core$([ "$cores" -gt 1 ] && echo s)), the same steps on the CPU"
fi
# float16 has no fast kernels on a CPU (PyTorch trained the sample at 72 samples/s with it,
# 2026-12-07): without a GPU the mixed-precision step only shows that it runs, on a slice.
mixed_flags=()
mixed_head="fast --mixed-precision"
if [ -z "$gpu" ]; then
    mixed_flags=(--epochs 1 --train-size 1024)
    mixed_head="fast --mixed-precision (no GPU: 1 epoch of 1,024 images)"
fi

# seconds LIMIT NAME -- COMMAND...: run it with a time limit, its output in the log; prints the
# wall seconds; the exit status is the command's (124 when it ran out of time).
timed() {
    local limit=$1 name=$2
    shift 3
    local begin end status
    begin=$(date +%s.%N)
    echo "=== $name: $*" >>"$log"
    timeout "$limit" "$@" >"$work/$name.out" 2>>"$log"
    status=$?
    end=$(date +%s.%N)
    cat "$work/$name.out" >>"$log"
    awk -v a="$begin" -v b="$end" 'BEGIN { printf "%.1f", b - a }'
    return $status
}

accuracy() { grep -o 'Test accuracy: [0-9.]*%' "$work/$1.out" | tail -1 | sed 's/Test accuracy: //'; }

rows=()
versions=()
for backend in ${BACKENDS:-jax torch}; do
    version=$("$py" -c "import importlib, sys; m = importlib.import_module(sys.argv[1]); print(m.__version__)" "$backend" 2>/dev/null)
    if [ -z "$version" ]; then
        rows+=("| $backend | not installed | | | | |")
        continue
    fi
    versions+=("$backend $version")
    export KERAS_BACKEND=$backend MNIST_TUI_DATA=$data
    runs="$work/$backend"
    mkdir -p "$runs"

    # The GPU tests: their summary line, e.g. "6 passed in 80.2s" or "6 skipped".
    timed 360 "$backend-gpu-tests" -- "$py" -m pytest -m gpu tests/test_gpu.py -q -rs \
        -p no:cacheprovider -o addopts="" >/dev/null
    tests=$(grep -E '(passed|failed|skipped|error)' "$work/$backend-gpu-tests.out" | tail -1 | sed 's/=//g; s/^ *//; s/ in [0-9.]*s.*//')
    reason=$(grep -o 'no GPU visible to [a-z]*' "$work/$backend-gpu-tests.out" | head -1)
    [ -n "$reason" ] && tests="$tests ($reason)"

    # The benchmark: the original script, then `train --preset fast`, each a whole process.
    timed 360 "$backend-bench" -- "$py" tests/benchmarks/bench_time_to_accuracy.py \
        --data "$data" --preset fast --rounds 1 >/dev/null
    bench=$(grep '^round 1:' "$work/$backend-bench.out" | sed 's/^round 1: //')
    script=$(sed -n 's/^script \([0-9.]* s\) \([0-9.]*%\).*/\1, \2/p' <<<"$bench")
    fast=$(sed -n 's/.* · fast \([0-9.]* s\) \([0-9.]*%\) · ratio \([0-9.]*\).*/\1, \2 (×\3 the script)/p' <<<"$bench")

    seconds=$(timed 180 "$backend-mixed" -- "$py" -m tui train --backend "$backend" --preset fast \
        --mixed-precision "${mixed_flags[@]}" --data "$data" --runs-dir "$runs" --out "$runs/mixed.keras")
    if [ $? -eq 0 ]; then mixed="$seconds s, $(accuracy "$backend-mixed")"; else mixed="failed ($seconds s, see log)"; fi

    # The GPU preset with mixed precision: the training time (its epochs, as the run records
    # them) against the goal of under 1 s, and the whole process. Without a GPU it would only
    # repeat `fast` in other numbers on a CPU, so it is not run.
    gpu_fast="no GPU: not run"
    if [ -n "$gpu" ]; then
        seconds=$(timed 180 "$backend-fast-gpu" -- "$py" -m tui train --backend "$backend" \
            --preset fast-gpu --mixed-precision --data "$data" --runs-dir "$runs/fast-gpu" \
            --out "$runs/fast-gpu.keras")
        if [ $? -eq 0 ]; then
            training=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "epoch_seconds") c = i }
                NR > 1 && c { s += $c } END { if (c) printf "%.2f", s; else printf "?" }' \
                "$runs"/fast-gpu/*/metrics.csv)
            gpu_fast="$training s training, $seconds s whole, $(accuracy "$backend-fast-gpu")"
        else
            gpu_fast="failed ($seconds s, see log)"
        fi
    fi

    rows+=("| $backend $version | ${tests:-failed, see log} | ${fast:-failed, see log} | $mixed | $gpu_fast | ${script:-failed, see log} |")
done
unset KERAS_BACKEND

keras=$("$py" -c "import keras; print(keras.__version__)" 2>/dev/null)
total=$(($(date +%s) - started))
echo
echo "### Device check, $(date -u +%Y-%m-%d) ($machine)"
echo
echo "Keras $keras; $(IFS=,; echo "${versions[*]}" | sed 's/,/, /g'); Python $("$py" -c 'import platform; print(platform.python_version())'); data $(basename "$data"); whole check ${total} s."
echo
echo "| backend | pytest -m gpu | fast: whole process, test accuracy | $mixed_head | fast-gpu --mixed-precision | original script (5 epochs) |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "Logs: $log"
