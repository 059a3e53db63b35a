"""One-off run behind the read_tasks=4 row of benchmarks/results/bulk.md:
`python benchmarks/results/bulk/ray_read_tasks.py` (the bench's own functions)."""

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import ray

import cliprt
from cliprt.bench.bulk_bench import _single, generate_jpegs
from cliprt.ray import embed_files

work = Path(tempfile.mkdtemp(prefix="cliprt-bulk-blocks-"))
generate_jpegs(work / "images", 2000)
model = cliprt.load("shapes", precision="fp32", device="cpu", threads=2)
model.warmup((32,))
ray.init(
    address="local",
    num_cpus=2,
    include_dashboard=False,
    log_to_driver=False,
    object_store_memory=300 << 20,
)
ray.data.DataContext.get_current().enable_progress_bars = False

out = {"load_before": os.getloadavg()}
t = time.perf_counter()
out["single_s"] = _single(model, work / "images", work / "s", 32)
t = time.perf_counter()
embed_files(
    str(work / "images"),
    str(work / "r"),
    model="shapes",
    precision="fp32",
    actors=1,
    threads_per_actor=2,
    batch_size=64,
    read_tasks=4,
)
out["ray_1x2_read_tasks_4_s"] = time.perf_counter() - t
out["load_after"] = os.getloadavg()
print(json.dumps(out))
shutil.rmtree(work, ignore_errors=True)
