#!/usr/bin/env bash
# Installs an aarch64 cliprt wheel into the emulated rootfs of scripts/aarch64-rootfs.sh
# and runs pytest there under qemu-aarch64-static.
#
#   scripts/aarch64-test.sh DIR WHEEL [PYTEST ARGS...]    # default: tests/kernel
#
# The wheel goes to DIR/cliprt (host pip, --target, aarch64 platform tags: nothing is
# compiled or run on the host); the repo's tests run against it (the repo has no
# top-level cliprt package to shadow it).
set -euo pipefail
DIR=$(realpath "${1:?usage: $0 DIR WHEEL [PYTEST ARGS...]}")
WHEEL=$(realpath "${2:?usage: $0 DIR WHEEL [PYTEST ARGS...]}")
shift 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$DIR/cliprt"
python3 -m pip install -q --no-deps --target "$DIR/cliprt" --only-binary=:all: \
  --platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp --abi cp311 "$WHEEL"
cd "$ROOT"
export PYTHONPATH="$DIR/cliprt"
"$DIR/py" -c "import platform, cliprt; from cliprt import _topk; print(platform.machine(), 'cliprt', cliprt.__version__, 'ISAs', _topk.available_isas())"
exec "$DIR/py" -m pytest -p no:cacheprovider "${@:-tests/kernel}"
