"""Peak memory and time per stage of one `cliprt export` (the towers-over-2-GB bench).

Runs export_model in this process with a sampler thread reading this process's RSS
(/proc/self/statm) every --interval seconds; each progress line (one per finished
stage) is printed with the peak RSS seen since the previous stage ended, and a
markdown table of stages, seconds and peaks is printed at the end. Every cliprt.export
module is imported before the export starts, so editing the source tree during a long
run does not change the code it runs.

    nice -n 10 /usr/bin/time -v python benchmarks/export_memory.py \\
        random:openclip-ViT-H-14 /tmp/vith/vith14 --precision fp32,fp16,int8

Linux only (RSS from /proc).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import threading
import time


def _import_all_export_modules() -> None:
    import cliprt.export

    for info in pkgutil.walk_packages(cliprt.export.__path__, "cliprt.export."):
        importlib.import_module(info.name)


def _vm_hwm() -> int | None:
    """This process's peak RSS (VmHWM) in bytes since start or the last reset."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def _rss_split() -> str:
    """ "anon X GB + file Y GB": RSS in private memory and in mapped files (weights
    mapped from a checkpoint or an external data file count in the second)."""
    fields = {}
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("RssAnon", "RssFile"):
                    fields[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError):
        return "?"
    return f"anon {fields.get('RssAnon', 0) / 1e9:.2f} + file {fields.get('RssFile', 0) / 1e9:.2f}"


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


class _Sampler(threading.Thread):
    """Keeps the peak RSS since the last reset, sampled every `interval` seconds."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        from cliprt.export.memory import rss_bytes

        self._rss = rss_bytes
        self.interval = interval
        self.peak = self.overall = rss_bytes() or 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.exact = False

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> int:
        now = self._rss() or 0
        with self._lock:
            self.peak = max(self.peak, now)
            self.overall = max(self.overall, now)
        return now

    def take_peak(self) -> tuple[int, int]:
        """(peak since the last call, RSS now); the next peak starts from now.

        The peak is the kernel's high-water mark (VmHWM) where it can be reset
        (/proc/self/clear_refs, Linux 4.0+), so no spike between samples is missed;
        the sampled peak otherwise.
        """
        now = self.sample()
        with self._lock:
            peak, self.peak = self.peak, now
            hwm = _vm_hwm()
            if hwm is not None and _reset_hwm():
                self.exact = True
                peak = max(peak, hwm)
        return peak, now

    def stop(self) -> None:
        self._stop.set()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source")
    p.add_argument("out")
    p.add_argument("--precision", default="fp32,fp16,int8")
    p.add_argument("--interval", type=float, default=1.0, help="RSS sampling period (s)")
    p.add_argument("--external-data-bytes", type=int, default=None, help="override the threshold")
    args = p.parse_args(argv)
    _import_all_export_modules()
    from cliprt.export.pipeline import EXTERNAL_DATA_BYTES, export_model

    sampler = _Sampler(args.interval)
    _reset_hwm()
    sampler.start()
    rows: list[tuple[str, float]] = [("start", 0.0)]
    start = time.perf_counter()

    def progress(line: str) -> None:
        peak, now = sampler.take_peak()
        print(
            f"[{time.strftime('%H:%M:%S')}] {line} | peak RSS {peak / 1e9:.2f} GB, "
            f"after {now / 1e9:.2f} GB ({_rss_split()})",
            file=sys.stderr,
            flush=True,
        )
        name = line.split(": ", 1)[0] if ": " in line else line
        if line.startswith(("vision: ", "text: ")):
            name = ": ".join(line.split(": ", 2)[:2])
        rows.append((name, peak / 1e9))

    export_model(
        args.source,
        args.out,
        precisions=args.precision,
        force=True,
        progress=progress,
        external_data_bytes=args.external_data_bytes or EXTERNAL_DATA_BYTES,
    )
    sampler.stop()
    total = time.perf_counter() - start
    print("| stage | peak RSS (GB) |\n|---|---:|")
    for name, peak in rows:
        print(f"| {name} | {peak:.2f} |")
    kind = "VmHWM per stage" if sampler.exact else f"sampled every {args.interval} s"
    print(f"total {total:.1f} s, peak RSS {max(p for _, p in rows):.2f} GB ({kind})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
