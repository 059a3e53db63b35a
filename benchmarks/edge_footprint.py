"""Edge footprint of a model folder: model files on disk, cold start and peak RSS.

    python benchmarks/edge_footprint.py /tmp/vitb32-edge --precision int8 --repeats 5

Each repeat is a fresh Python process (CHILD below): cold start = the parent's launch
stamp to the first image embedding (interpreter start, imports, hash checks, session
creation, first inference), as wall time and as the process's CPU time (user + sys, all
threads; on a shared, loaded box the CPU time is the steadier figure); peak RSS = the
child's VmHWM after embedding one image, one text, then a batch of --batch images and
texts.
The first repeat after an export or a copy pays for the hash check (and the page cache);
later ones meet the verified-file cache: both are reported. Medians over the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cliprt.manifest import read_manifest

CHILD = r"""
import json, os, sys, time
t_start = float(sys.argv[1])
def cpu():
    t = os.times()
    return t.user + t.system
import cliprt
stamps = {"import": (time.time() - t_start, cpu())}
spec = json.load(open(sys.argv[3]))
m = cliprt.load(sys.argv[2], precision=sys.argv[4], device="cpu", threads=int(sys.argv[5]))
stamps["load"] = (time.time() - t_start, cpu())
m.encode_images(spec["images"][:1])
stamps["first_image"] = (time.time() - t_start, cpu())
m.encode_texts(spec["texts"][:1])
stamps["first_text"] = (time.time() - t_start, cpu())
m.encode_images(spec["images"], batch_size=len(spec["images"]))
m.encode_texts(spec["texts"])
peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
print("EDGE " + json.dumps({"stamps": stamps, "peak_rss_bytes": peak}))
"""


def _child(model: str, spec: Path, precision: str, threads: int) -> dict:
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, repr(t0), model, str(spec), precision, str(threads)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("EDGE ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"child failed ({out.returncode}): {out.stderr[-2000:]}")
    data = json.loads(lines[-1][5:])
    st = data["stamps"]
    return {
        "import_s": st["import"][0],
        "load_s": st["load"][0] - st["import"][0],
        "cold_start_s": st["first_image"][0],
        "cold_start_cpu_s": st["first_image"][1],
        "load_cpu_s": st["load"][1] - st["import"][1],
        "peak_rss_bytes": data["peak_rss_bytes"],
    }


def _inputs(folder: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (256, 320, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    texts = [f"a photo of a {w}" for w in ("cat", "dog", "red circle", "blue square")] * n
    spec = folder / "inputs.json"
    spec.write_text(json.dumps({"images": paths, "texts": texts[:n]}))
    return spec


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("--precision", default="int8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cache-dir", help="CLIPRT_CACHE_DIR for the children (default: a fresh one)")
    p.add_argument(
        "--verify-always",
        action="store_true",
        help="CLIPRT_VERIFY=always: hash every file at every load (cliprt before the cache)",
    )
    p.add_argument("--out", help="write the raw figures as JSON here")
    ns = p.parse_args(argv)
    man = read_manifest(ns.model)
    files = [v.bytes for t in man.towers.values() for k, v in t.items() if k == ns.precision]
    files += [man.tokenizer.bytes, man.preprocessor.bytes]
    runs = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        spec = _inputs(Path(tmp), ns.batch)
        os.environ["CLIPRT_CACHE_DIR"] = ns.cache_dir or str(Path(tmp) / "cache")
        if ns.verify_always:
            os.environ["CLIPRT_VERIFY"] = "always"
        for _ in range(ns.repeats):
            runs.append(_child(ns.model, spec, ns.precision, ns.threads))

    def med(key: str, rows: list[dict]) -> float:
        return statistics.median(r[key] for r in rows)

    later = runs[1:] or runs
    result = {
        "model": str(ns.model),
        "precision": ns.precision,
        "model_files_bytes": sum(files),
        "first_run": runs[0],
        "later_runs_median": {k: med(k, later) for k in runs[0]},
        "runs": runs,
        "threads": ns.threads,
        "batch": ns.batch,
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        # The box may be shared: wall figures mean little under load (CPU time does).
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "python": sys.version.split()[0],
    }
    m = result["later_runs_median"]
    print(
        f"{ns.model} {ns.precision}: files {sum(files) / 1e6:.1f} MB; first run: cold start "
        f"{runs[0]['cold_start_s']:.2f} s wall / {runs[0]['cold_start_cpu_s']:.2f} s CPU; "
        f"later runs (median of {len(later)}): cold start {m['cold_start_s']:.2f} s wall / "
        f"{m['cold_start_cpu_s']:.2f} s CPU (import {m['import_s']:.2f} s, load "
        f"{m['load_s']:.2f} s wall / {m['load_cpu_s']:.2f} s CPU), peak RSS "
        f"{m['peak_rss_bytes'] / 2**20:.0f} MiB; load average {load_before[0]:.1f} -> "
        f"{result['load_average_after'][0]:.1f} ({result['cpu']})"
    )
    if ns.out:
        Path(ns.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
