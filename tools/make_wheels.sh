#!/usr/bin/env bash
# Fill wheels/ (ignored by git) with what an offline GPU box needs to install mnist-tui without
# TensorFlow: the project's own wheel and its other dependencies, with what they need, for one
# Python and platform (default CPython 3.12, manylinux x86_64). tools/device_check.sh installs
# from it with --no-index. The folder and the MNIST npz must fit a 64 MiB carry: the size is
# printed at the end.
#
# Usage: tools/make_wheels.sh [PYTHON_VERSION]        e.g. tools/make_wheels.sh 3.12
set -euo pipefail

cd "$(dirname "$0")/.."
version="${1:-3.12}"
abi="cp${version/./}"
out=wheels
python="${PYTHON:-python3}"

rm -rf "$out"
mkdir -p "$out"

# The project itself, without its dependencies (TensorFlow among them is left to the box).
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$out" .

# Everything but TensorFlow (and NumPy, JAX, PyTorch: the box's own are reused). Keras
# needs h5py, optree, ml-dtypes, namex, absl-py; Optuna needs SQLAlchemy, alembic and others.
# The test tools run the GPU tests there.
"$python" -m pip download --quiet --dest "$out" \
    --only-binary=:all: --implementation cp --python-version "$version" --abi "$abi" \
    --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any \
    "keras>=3.3" "textual>=1.0" "textual-plotext>=1.0" "plotext>=5.2" "rich>=13" \
    "msgspec>=0.18" "tomli-w>=1.0" "optuna>=4.0" \
    "pytest>=8" "pytest-asyncio>=0.23" "hypothesis>=6.100"

# NumPy comes with the box's JAX and PyTorch: its wheel would only take room in the carry.
rm -f "$out"/numpy-*.whl

du -sh "$out"
ls "$out" | wc -l | xargs echo "wheels:"
