"""cliprt.ray on a real local Ray cluster: the same embeddings as `cliprt embed`
(fp32, bit for bit), a corrupt file reported and not fatal, shards `cliprt index build`
reads.

Ray is not in the `test` extra (a large install for one adapter): in CI these tests
skip with the reason below; run them with `pip install -e ".[ray,test]"` (results in
benchmarks/results/bulk.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cliprt.cli import main
from cliprt.runtime.index import Index
from cliprt.runtime.shards import ShardReader, write_failures_report

pytest.importorskip("pyarrow", reason="Parquet shards need pyarrow (the bulk extra)")
ray = pytest.importorskip(
    "ray", reason='Ray is not installed (the ray extra: pip install "cliprt[ray]")'
)
pytest.importorskip("ray.data", reason="Ray Data is not installed (ray[data])")

# Ray's own deprecations and notices are Ray's, not ours (warnings are errors here).
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*"),
    pytest.mark.filterwarnings("ignore::FutureWarning:ray.*"),
    pytest.mark.filterwarnings("ignore::UserWarning:ray.*"),
]

FP32 = ["--precision", "fp32", "--device", "cpu", "--threads", "2", "-q"]


@pytest.fixture(scope="module")
def ray_cluster():
    """A real local Ray cluster of 2 CPUs, small object store (a shared box)."""
    ray.init(
        address="local",  # a new cluster of our own, never one another process started
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 1024 * 1024,
        log_to_driver=False,
        configure_logging=False,
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def _rows(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for shard in sorted(folder.glob("*.parquet")):
        for b in ShardReader(shard).batches():
            out.update(zip(b.paths, b.embeddings, strict=True))
    return out


def test_ray_equals_cliprt_embed_and_survives_a_corrupt_file(
    ray_cluster, mixed_dir, tmp_path: Path
) -> None:
    from cliprt.ray import embed_files

    folder, good, bad = mixed_dir
    folder = folder.resolve()
    single = tmp_path / "single"
    assert main(["embed", "shapes", str(folder), "-o", str(single), *FP32]) == 0
    out = tmp_path / "ray"
    embed_files(str(folder), str(out), model="shapes", precision="fp32", actors=2, batch_size=4)
    shards = sorted(out.glob("*.parquet"))
    got, want = _rows(out), _rows(single)
    assert sorted(got) == sorted(want) == sorted(str(p) for p in good)
    for path, emb in want.items():
        np.testing.assert_array_equal(got[path], emb)  # fp32: bit-identical
    report = tmp_path / "failures.jsonl"
    assert write_failures_report(shards, report) == len(bad)
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted(r["path"] for r in lines) == sorted(str(p) for p in bad)
    assert {r["error"] for r in lines} == {"InputError"}
    assert all(r["path"] in r["message"] for r in lines)
    fp = ShardReader(shards[0]).fingerprint
    assert fp is not None and fp.precision == "fp32"
    # Ray's shards build an index like cliprt embed's do (failed rows skipped).
    cix = tmp_path / "ray.cix"
    assert main(["index", "build", str(out), "-o", str(cix)]) == 0
    index = Index.load(cix)
    assert sorted(index.keys_of(range(len(index)))) == sorted(want)
    assert index.fingerprint == fp
