"""Edge footprint of a model folder: model files on disk, cold start and peak RSS.

    python benchmarks/edge_footprint.py /tmp/vitb32-edge --precision int8 --repeats 5

Each repeat is a fresh `python -m cliprt.bench.memory engine ...` process (see that
module): cold start = the parent's launch stamp to the first image embedding (interpreter
start, imports, hash checks, session creation, first inference); peak RSS = the child's
VmHWM after embedding one image, one text, then a batch of --batch images and texts.
The first repeat after an export or a copy pays for the hash check (and the page cache);
later ones meet the verified-file cache: both are reported. Medians over the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from cliprt.bench.memory import probe
from cliprt.manifest import read_manifest


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
    with tempfile.TemporaryDirectory() as tmp:
        spec = _inputs(Path(tmp), ns.batch)
        os.environ["CLIPRT_CACHE_DIR"] = ns.cache_dir or str(Path(tmp) / "cache")
        if ns.verify_always:
            os.environ["CLIPRT_VERIFY"] = "always"
        for _ in range(ns.repeats):
            r = probe(
                "engine",
                model=ns.model,
                precision=ns.precision,
                device="cpu",
                threads=ns.threads,
                inputs_json=str(spec),
            )
            runs.append(
                {k: r[k] for k in ("import_ms", "load_ms", "cold_start_image_ms", "peak_rss_bytes")}
            )

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
        "python": sys.version.split()[0],
    }
    m = result["later_runs_median"]
    print(
        f"{ns.model} {ns.precision}: files {sum(files) / 1e6:.1f} MB; "
        f"first run cold start {runs[0]['cold_start_image_ms'] / 1000:.2f} s, "
        f"later runs (median of {len(later)}) cold start {m['cold_start_image_ms'] / 1000:.2f} s "
        f"(import {m['import_ms'] / 1000:.2f} s, load {m['load_ms'] / 1000:.2f} s), "
        f"peak RSS {m['peak_rss_bytes'] / 2**20:.0f} MiB"
    )
    if ns.out:
        Path(ns.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
