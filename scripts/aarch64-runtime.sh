#!/usr/bin/env bash
# The runtime on aarch64 under qemu: the shipped `shapes` model in fp32 and int8, its
# embeddings compared with this x86-64 machine's, then `cliprt verify` there.
#
#   scripts/aarch64-runtime.sh DIR WHEEL [WORK]
#
# DIR: the rootfs of scripts/aarch64-rootfs.sh; WHEEL: the aarch64 wheel of
# scripts/build-aarch64.sh; WORK: where the .npz files go (default: a temp folder).
# The host side uses the cliprt installed for python3 here (same sources as the wheel).
set -euo pipefail
DIR=$(realpath "${1:?usage: $0 DIR WHEEL [WORK]}")
WHEEL=$(realpath "${2:?usage: $0 DIR WHEEL [WORK]}")
WORK=$(realpath -m "${3:-$(mktemp -d)}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$WORK"
rm -rf "$DIR/cliprt"
python3 -m pip install -q --no-deps --target "$DIR/cliprt" --only-binary=:all: \
  --platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp --abi cp311 "$WHEEL"
export PYTHONPATH="$DIR/cliprt"
cd "$WORK"
echo "host: $(uname -m), $(lscpu | sed -n 's/^Model name: *//p'); emulated: qemu-aarch64-static $("$DIR/qemu/usr/bin/qemu-aarch64-static" --version | head -1 | awk '{print $3}')"
for precision in fp32 int8; do
  env -u PYTHONPATH python3 "$ROOT/benchmarks/cross_arch.py" dump shapes --precision "$precision" --threads 2 -o "x86_64-$precision.npz"
  "$DIR/py" "$ROOT/benchmarks/cross_arch.py" dump shapes --precision "$precision" --threads 2 -o "aarch64-$precision.npz"
  python3 "$ROOT/benchmarks/cross_arch.py" compare "x86_64-$precision.npz" "aarch64-$precision.npz"
done
echo "\$ cliprt verify shapes --precision all   (aarch64, emulated)"
"$DIR/py" -m cliprt.cli verify shapes --precision all --device cpu --threads 2
