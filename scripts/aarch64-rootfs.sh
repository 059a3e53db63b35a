#!/usr/bin/env bash
# An arm64 Debian root filesystem with CPython 3.11 and the runtime's aarch64 wheels, for
# running cliprt under qemu-aarch64-static on an x86-64 machine (no binfmt, no chroot).
#
#   scripts/aarch64-rootfs.sh DIR        # e.g. /work/wt/edge-rootfs (outside the repo)
#
# DIR/rootfs     Debian bookworm arm64, packages extracted only (mmdebstrap --variant=extract:
#                no maintainer scripts run, so no arm64 code runs while building it)
# DIR/site       aarch64 wheels (numpy, onnxruntime, tokenizers, pillow, pytest, hypothesis)
#                installed by the host's pip for the target platform (no emulated pip)
# DIR/qemu       qemu-aarch64-static from Debian's qemu-user-static package
# DIR/rootfs/proc/cpuinfo  an arm64 cpuinfo for qemu to show (see below)
# DIR/py         a wrapper: DIR/py ARGS... runs the arm64 python3.11 under qemu
#
# Needs: mmdebstrap (apt-get install mmdebstrap), apt-get, dpkg-deb, pip; a network to
# deb.debian.org and PyPI.
set -euo pipefail
DIR=$(realpath -m "${1:?usage: $0 DIR}")
SUITE=${SUITE:-bookworm}
mkdir -p "$DIR"

if [[ ! -x $DIR/qemu/usr/bin/qemu-aarch64-static ]]; then
  (cd "$DIR" && apt-get download -q qemu-user-static && dpkg-deb -x qemu-user-static_*.deb qemu \
    && rm -f qemu-user-static_*.deb)
fi

if [[ ! -x $DIR/rootfs/usr/bin/python3.11 ]]; then
  # libpython3.11-dev: the target's Python headers, which the cross build also uses.
  mmdebstrap --arch=arm64 --variant=extract \
    --include=python3.11,libpython3.11-dev,libstdc++6,libgcc-s1,libgomp1,zlib1g,ca-certificates \
    "$SUITE" "$DIR/rootfs.tmp" http://deb.debian.org/debian
  mv "$DIR/rootfs.tmp" "$DIR/rootfs"
fi

if [[ ! -d $DIR/site/numpy ]]; then
  # manylinux_2_28 first: onnxruntime's aarch64 wheels need it (glibc >= 2.28).
  python3 -m pip install -q --target "$DIR/site.tmp" --only-binary=:all: \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 \
    --platform manylinux2014_aarch64 --python-version 3.11 --implementation cp --abi cp311 \
    numpy onnxruntime tokenizers pillow pytest hypothesis
  rm -rf "$DIR/site" && mv "$DIR/site.tmp" "$DIR/site"
fi

# qemu-user 7.2 passes the host's (x86) /proc/cpuinfo through; onnxruntime's cpuinfo
# library finds no ARM core in it and crashes at import. qemu resolves absolute paths
# under -L first, so an arm64 /proc/cpuinfo in the rootfs (a Neoverse-N1 description,
# one entry per host CPU, matching /sys/devices/system/cpu/possible) is what it reads.
mkdir -p "$DIR/rootfs/proc"
NCPU=$(( $(cut -d- -f2 /sys/devices/system/cpu/possible) + 1 ))
for ((i = 0; i < NCPU; i++)); do
  printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n' "$i"
done >"$DIR/rootfs/proc/cpuinfo"

cat > "$DIR/py" <<WRAP
#!/usr/bin/env bash
# The arm64 CPython of $DIR under qemu user-mode emulation.
export PYTHONPATH="$DIR/site\${PYTHONPATH:+:\$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
# sys.executable is this wrapper (qemu -0 sets argv[0]), so that code which starts
# sys.executable in a subprocess gets the emulated interpreter again; PYTHONHOME then
# points CPython at the rootfs's standard library.
export PYTHONHOME="$DIR/rootfs/usr"
# The emulated core: a Neoverse-N1 (Graviton 2, Ampere Altra: ARMv8.2 + dotprod), the one
# the rootfs's /proc/cpuinfo describes. qemu's default "max" core also offers SVE2, I8MM
# and BF16, on which onnxruntime 1.32's int8 towers gave wrong embeddings under qemu 7.2
# (benchmarks/results/aarch64.md); QEMU_CPU=max reproduces that.
export QEMU_CPU=\${QEMU_CPU:-neoverse-n1}
exec "$DIR/qemu/usr/bin/qemu-aarch64-static" -L "$DIR/rootfs" -0 "$DIR/py" "$DIR/rootfs/usr/bin/python3.11" "\$@"
WRAP
chmod +x "$DIR/py"
"$DIR/py" -c "import platform, numpy, onnxruntime; print(platform.machine(), 'numpy', numpy.__version__, 'onnxruntime', onnxruntime.__version__)"
