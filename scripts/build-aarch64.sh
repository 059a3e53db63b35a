#!/usr/bin/env bash
# Cross-builds a manylinux_2_28_aarch64 wheel of cliprt on an x86-64 Linux machine.
#
#   scripts/build-aarch64.sh PYINCLUDE [OUTDIR]
#
# PYINCLUDE  the target CPython's include dir (Python.h, pyconfig.h for aarch64), e.g.
#            ROOT/rootfs/usr/include/python3.11 from scripts/aarch64-rootfs.sh ROOT
# OUTDIR     where the wheel goes (default dist-aarch64/)
#
# The compiler is zig's clang (pip install ziglang) targeting aarch64-linux-gnu.2.28:
# it links against glibc 2.28's symbol versions and carries its own libc++ (static), so
# the extension needs nothing newer than manylinux_2_28 allows. The NEON kernel gets the
# same flags contract as x86 (CMakeLists.txt: -ffp-contract=off, no -ffast-math).
# Environment: PYVER (default 3.11) must match PYINCLUDE.
set -euo pipefail
PYINCLUDE=$(realpath "${1:?usage: $0 PYINCLUDE [OUTDIR]}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${2:-$ROOT/dist-aarch64}")
PYVER=${PYVER:-3.11}
TAG=cp${PYVER/./}
TARGET=aarch64-linux-gnu.2.28

[[ -f $PYINCLUDE/Python.h ]] || { echo "no Python.h in $PYINCLUDE" >&2; exit 2; }
python3 -c "import ziglang" 2>/dev/null || { echo "needs zig: pip install ziglang" >&2; exit 2; }

WORK=$ROOT/build/aarch64
BIN=$WORK/bin
INC=$WORK/include
mkdir -p "$BIN" "$INC" "$OUT"
PY=$(command -v python3)
# zig reads -march=armv8.2-a+dotprod (CMakeLists.txt's flag for kernel_neondot.cpp) as
# an unknown CPU "armv8.2"; the wrapper hands it on as zig's -mcpu=generic+v8_2a+dotprod.
for tool in cc c++; do
  {
    printf '#!/usr/bin/env bash\nargs=()\nfor a in "$@"; do\n'
    printf '  [[ $a == -march=armv8.2-a+dotprod ]] && a=-mcpu=generic+v8_2a+dotprod\n'
    printf '  args+=("$a")\ndone\n'
    printf 'exec "%s" -m ziglang %s -target %s "${args[@]}"\n' "$PY" "$tool" "$TARGET"
  } >"$BIN/zig-$tool"
done
for tool in ar ranlib; do
  printf '#!/bin/sh\nexec "%s" -m ziglang %s "$@"\n' "$PY" "$tool" >"$BIN/zig-$tool"
done
chmod +x "$BIN"/zig-*

# Debian's pyconfig.h is a wrapper that includes <aarch64-linux-gnu/python3.X/pyconfig.h>
# from /usr/include; expose only that file, not the target's whole /usr/include (its
# glibc headers would shadow zig's).
MULTIARCH=$PYINCLUDE/../aarch64-linux-gnu/python$PYVER
if [[ -f $MULTIARCH/pyconfig.h ]]; then
  mkdir -p "$INC/aarch64-linux-gnu/python$PYVER"
  cp "$MULTIARCH/pyconfig.h" "$INC/aarch64-linux-gnu/python$PYVER/pyconfig.h"
fi

export CLIPRT_ZIG_BIN=$BIN
export SETUPTOOLS_EXT_SUFFIX=.cpython-${TAG#cp}-aarch64-linux-gnu.so
export _PYTHON_HOST_PLATFORM=manylinux_2_28_aarch64
export CXXFLAGS="-I$INC ${CXXFLAGS:-}"
python3 -m pip wheel --no-deps --no-build-isolation -w "$OUT" "$ROOT" \
  -Cbuild-dir="$WORK/cmake" \
  -Ccmake.define.CMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-zig.cmake" \
  -Ccmake.define.Python_INCLUDE_DIR="$PYINCLUDE" \
  -Ccmake.define.Python3_INCLUDE_DIR="$PYINCLUDE" \
  -Cwheel.tags="$TAG-$TAG-manylinux_2_28_aarch64"
WHEEL=$(ls -t "$OUT"/cliprt-*-"$TAG"-"$TAG"-manylinux_2_28_aarch64.whl | head -1)
echo "built $WHEEL"
# The glibc symbol versions the extension needs: manylinux_2_28 allows up to GLIBC_2.28.
unzip -o -q "$WHEEL" 'cliprt/_topk*.so' -d "$WORK/check"
SO=$(ls "$WORK"/check/cliprt/_topk*.so)
file "$SO"
NEEDED=$(objdump -T "$SO" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
echo "highest glibc symbol version: $NEEDED"
python3 - "$NEEDED" <<'PY'
import sys
ver = tuple(int(x) for x in sys.argv[1].removeprefix("GLIBC_").split("."))
sys.exit(0 if ver <= (2, 28) else f"{sys.argv[1]} > GLIBC_2.28: not manylinux_2_28")
PY
