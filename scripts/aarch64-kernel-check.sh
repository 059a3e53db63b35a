#!/usr/bin/env bash
# The top-k kernel (csrc/) for aarch64, cross-built and checked under qemu-user: the
# NEON and the NEON-dotprod kernels, fp32/fp16/int8 against a float64 reference, 1 and
# several threads (scripts/kernel-check/kernel_check.cpp). What CI runs (.ci/run); a few
# minutes from nothing, under a minute once cached.
#
#   scripts/aarch64-kernel-check.sh            # aarch64 under qemu (needs network once)
#   scripts/aarch64-kernel-check.sh --native   # the same driver built for this machine
#
# No root, no rootfs: the driver and the kernel are linked statically against musl by
# zig's clang (pip install ziglang), so qemu-aarch64-static runs the binary alone. qemu
# comes from Debian's qemu-user-static package: `apt-get download` (works without root
# where apt's package lists are present) + `dpkg-deb -x`, or QEMU_AARCH64=/path/to/qemu.
# Cached under ${CLIPRT_CACHE:-~/.cache/cliprt-ci}/aarch64 (the qemu binary, zig's venv, the
# objects) and zig's ~/.cache/zig (musl and libc++ for the target, built once: minutes).
#
# Cores: neoverse-n1 (ARMv8.2 + dotprod: Graviton 2, Ampere Altra) must offer
# baseline,neon,neondot; cortex-a72 (ARMv8.0, Raspberry Pi 4) must offer baseline,neon
# only, so the run-time dispatch is checked both ways. Threads: the emulated process
# sees this machine's CPUs; the driver asks for 1, 2, 3, 4 and 8.
# Exit status: non-zero when a check, the build or the download fails.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CLIPRT_CACHE:-$HOME/.cache/cliprt-ci}/aarch64
mkdir -p "$CACHE"
CSRC=$ROOT/csrc
COMMON=(topk.cpp isa.cpp threads.cpp stream.cpp kernel_baseline.cpp)
FLAGS=(-std=c++17 -O3 -ffp-contract=off -Wall -Wextra -Werror)

# build OUT CXX... : compiles the driver and the kernel's translation units, each with
# its own ISA flags (as CMakeLists.txt does; no LTO), and links OUT.
build() {
  local out=$1 arch=$2
  shift 2
  local objs=() tu extra
  local units=("${COMMON[@]}")
  if [[ $arch == aarch64 ]]; then
    units+=(kernel_neon.cpp kernel_neondot.cpp)
  else
    units+=(kernel_avx2.cpp kernel_avx512.cpp kernel_avx512vnni.cpp)
  fi
  local obj=$CACHE/obj-$arch
  mkdir -p "$obj"
  for tu in "${units[@]}" kernel_check.cpp; do
    case $tu in
      # CMakeLists.txt's -march=armv8.2-a+dotprod, spelled as zig's clang takes it.
      kernel_neondot.cpp) extra=(-mcpu=generic+v8_2a+dotprod) ;;
      kernel_avx2.cpp) extra=(-mavx2 -mfma -mf16c) ;;
      kernel_avx512.cpp) extra=(-mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c) ;;
      kernel_avx512vnni.cpp) extra=(-mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma -mf16c) ;;
      *) extra=() ;;
    esac
    local src=$CSRC/$tu
    [[ $tu == kernel_check.cpp ]] && src=$ROOT/scripts/kernel-check/kernel_check.cpp
    "$@" "${FLAGS[@]}" "${extra[@]}" -c "$src" -o "$obj/${tu%.cpp}.o" &
    objs+=("$obj/${tu%.cpp}.o")
  done
  wait_all
  "$@" -pthread -o "$out" "${objs[@]}"
}

wait_all() {
  local pid status=0
  for pid in $(jobs -p); do wait "$pid" || status=1; done
  return $status
}

if [[ ${1:-} == --native ]]; then
  BIN=$CACHE/kernel_check-native
  build "$BIN" "$(uname -m)" "${CXX:-c++}"
  exec "$BIN"
fi

# zig: the ziglang wheel (its own clang, musl and libc++ for every target), in a venv of
# its own under the cache, so that the caller's environment is left alone.
ZVENV=$CACHE/zig-venv
if ! "$ZVENV/bin/python" -c "import ziglang" 2>/dev/null; then
  rm -rf "$ZVENV"
  python3 -m venv "$ZVENV"
  "$ZVENV/bin/python" -m pip install -q --disable-pip-version-check "ziglang==0.17.1"
fi
ZIG=("$ZVENV/bin/python" -m ziglang)

# qemu-aarch64-static: QEMU_AARCH64, else the cached copy, else Debian's package.
QEMU=${QEMU_AARCH64:-$CACHE/qemu-aarch64-static}
if [[ ! -x $QEMU ]]; then
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  get_qemu() { (cd "$TMP" && apt-get download -q qemu-user-static >/dev/null 2>"$TMP/apt.err"); }
  # Package lists older than Debian's last point release name .debs the mirror no longer
  # has: refresh them once where we may (root), then try again.
  if ! get_qemu && [[ $(id -u) == 0 ]]; then
    apt-get update -q >/dev/null 2>>"$TMP/apt.err" || true
  fi
  if [[ ! -f $(ls "$TMP"/qemu-user-static_*.deb 2>/dev/null | head -1) ]] && ! get_qemu; then
    cat "$TMP/apt.err" >&2
    echo "cannot get qemu-user-static with apt-get download (are apt's package lists" \
      "present? \`apt-get update\` as root fills them); or set QEMU_AARCH64 to a" \
      "qemu-aarch64-static binary" >&2
    exit 1
  fi
  dpkg-deb -x "$TMP"/qemu-user-static_*.deb "$TMP/x"
  cp "$TMP/x/usr/bin/qemu-aarch64-static" "$CACHE/qemu-aarch64-static.tmp"
  mv "$CACHE/qemu-aarch64-static.tmp" "$CACHE/qemu-aarch64-static"
  QEMU=$CACHE/qemu-aarch64-static
fi
"$QEMU" --version | head -1

BIN=$CACHE/kernel_check-aarch64
build "$BIN" aarch64 "${ZIG[@]}" c++ -target aarch64-linux-musl -static
file "$BIN" 2>/dev/null || true

status=0
for core in neoverse-n1:baseline,neon,neondot cortex-a72:baseline,neon; do
  echo "== qemu-aarch64 -cpu ${core%%:*}"
  "$QEMU" -cpu "${core%%:*}" "$BIN" --expect-isas "${core#*:}" || status=1
done
exit $status
