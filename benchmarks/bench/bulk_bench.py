"""Bulk embedding throughput: `cliprt embed` (one process) against cliprt.ray (a local
Ray cluster) on the same generated JPEG files, in one run, runs interleaved.

    python -m cliprt.bench.bulk_bench --model shapes --precision fp32 --images 2000 \
        --out benchmarks/results/bulk_shapes.json

Both sides read the same files, decode and preprocess them with cliprt's own code and
write Parquet shards; images/s = files / wall time of the job. The single process is
timed from its first file to its last shard (the model loaded before, as a long job
amortises it); the Ray side is timed around `embed_files`, which includes starting the
actor pool and loading one model per actor (Ray itself is started before the timer:
`ray.init` time is reported apart). The difference is Ray's overhead on one machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from cliprt.bench.env import cpu_description, load_average, versions

if TYPE_CHECKING:
    from cliprt.runtime.model import ClipModel


def generate_jpegs(folder: Path, n: int, *, seed: int = 0) -> list[Path]:
    """n photo-sized JPEGs (640x480 and 480x640, smooth gradients plus noise, quality 90)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float32)
    paths = []
    for i in range(n):
        base = (xx * rng.uniform(0.1, 0.4) + yy * rng.uniform(0.1, 0.4)) % 256
        rgb = np.stack([base, np.roll(base, 80, axis=1), 255 - base], axis=2)
        rgb = np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
        if i % 2:
            rgb = rgb.transpose(1, 0, 2)
        sub = folder / f"{i // 500:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"{i:06d}.jpg"
        Image.fromarray(rgb).save(path, quality=90)
        paths.append(path)
    return paths


def _single(model: ClipModel, folder: Path, out: Path, batch_size: int) -> float:
    from cliprt.runtime.bulk import ShardedJob
    from cliprt.runtime.sources import ImageSources

    sources = ImageSources((str(folder),))
    job = ShardedJob(out, shard_size=1000)
    job.check()
    start = time.perf_counter()
    summary = job.run(model, sources, batch_size=batch_size, progress=False)
    wall = time.perf_counter() - start
    assert summary.failed == 0
    return wall


def _ray_run(
    model_dir: str, precision: str, folder: Path, out: Path, actors: int, threads: int
) -> float:
    from cliprt.ray import embed_files

    start = time.perf_counter()
    embed_files(
        str(folder),
        str(out),
        model=model_dir,
        precision=precision,
        actors=actors,
        threads_per_actor=threads,
        batch_size=64,
    )
    return time.perf_counter() - start


def _env(threads: int) -> dict[str, object]:
    cpu = cpu_description()
    v = versions(extra=("ray", "pyarrow"))
    return {
        "cpu": cpu["model"],
        "cpus": cpu["logical_cores"],
        "threads": threads,
        "versions": {
            p: v[p] or "-" for p in ("cliprt", "onnxruntime", "ray", "pyarrow", "numpy", "pillow")
        },
        "python": v["python"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="shapes", help="model folder or shipped name")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=2, help="runs per side, interleaved")
    p.add_argument("--threads", type=int, default=2, help="CPUs used by each side")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", required=True, help="JSON results file")
    args = p.parse_args(argv)

    import ray

    import cliprt

    work = Path(tempfile.mkdtemp(prefix="cliprt-bulk-bench-"))
    try:
        t0 = time.perf_counter()
        generate_jpegs(work / "images", args.images)
        gen_s = time.perf_counter() - t0
        load_before = load_average()
        model = cliprt.load(
            args.model, precision=args.precision, device="cpu", threads=args.threads
        )
        model.warmup((args.batch_size,))
        t0 = time.perf_counter()
        ray.init(
            address="local",
            num_cpus=args.threads,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=300 * 1024 * 1024,
        )
        ray.data.DataContext.get_current().enable_progress_bars = False
        ray_init_s = time.perf_counter() - t0
        configs = [("ray", args.threads, 1), ("ray", 1, args.threads)]
        runs: dict[str, list[float]] = {"single": []}
        for kind, actors, threads in configs:
            runs[f"{kind} {actors} actor(s) x {threads} thread(s)"] = []
        for r in range(args.repeats):
            runs["single"].append(
                _single(model, work / "images", work / f"single{r}", args.batch_size)
            )
            for kind, actors, threads in configs:
                name = f"{kind} {actors} actor(s) x {threads} thread(s)"
                runs[name].append(
                    _ray_run(
                        str(model.folder),
                        args.precision,
                        work / "images",
                        work / f"ray{r}-{actors}",
                        actors,
                        threads,
                    )
                )
        ray.shutdown()
        result = {
            "model": args.model,
            "precision": args.precision,
            "images": args.images,
            "image_size": "640x480 / 480x640 JPEG q90",
            "repeats": args.repeats,
            "batch_size": args.batch_size,
            "ray_init_s": ray_init_s,
            "generate_s": gen_s,
            "load_before": load_before,
            "load_after": load_average(),
            "env": _env(args.threads),
            "runs": {
                name: {
                    "wall_s": walls,
                    "median_wall_s": statistics.median(walls),
                    "images_per_s": args.images / statistics.median(walls),
                }
                for name, walls in runs.items()
            },
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["runs"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
