"""`cliprt index build` from shards, and `cliprt search --index` naming files by the
index's own keys."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cliprt.cli import main
from cliprt.errors import ModelMismatchError
from cliprt.runtime.fingerprint import ModelFingerprint
from cliprt.runtime.index import Index
from cliprt.runtime.index_build import build_index_file
from cliprt.runtime.shards import ShardReader, write_shard

from .conftest import write_images

pytest.importorskip("pyarrow", reason="Parquet shards need pyarrow (the bulk extra)")
pytest.importorskip("tqdm", reason="the progress bar needs tqdm (the bulk extra)")

FP32 = ["--precision", "fp32", "--device", "cpu", "--threads", "2", "-q"]


@pytest.fixture
def shards(tmp_path: Path, mixed_dir) -> Path:
    folder, _, _ = mixed_dir
    out = tmp_path / "shards"
    assert main(["embed", "shapes", str(folder), "-o", str(out), "--shard-size", "4", *FP32]) == 0
    return out


def test_build_then_search_names_the_files(shards: Path, tmp_path: Path, capsys) -> None:
    cix = tmp_path / "images.cix"
    assert main(["index", "build", str(shards), "-o", str(cix)]) == 0
    index = Index.load(cix)
    rows = []
    for shard in sorted(shards.glob("part-*.parquet")):
        for b in ShardReader(shard).batches():
            rows += b.paths
    assert len(index) == len(rows) and index.keys_of(range(len(rows))) == rows
    assert index.fingerprint is not None and index.fingerprint.precision == "fp32"
    capsys.readouterr()
    query = ["search", "shapes", "--index", str(cix), "--query", "a red circle", "-k", "3"]
    assert main([*query, *FP32]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and all(line.split()[-1] in rows for line in out[1:])
    # The same search straight over the files names the same images in the same order.
    images = [str(p) for p in sorted(Path(r) for r in rows)]
    direct = ["search", "shapes", "--images", *images, "--query", "a red circle", "-k", "3"]
    assert main([*direct, *FP32]) == 0
    assert capsys.readouterr().out.splitlines() == out


def test_model_mismatch_is_refused_unless_allowed(shards: Path, tmp_path: Path, capsys) -> None:
    cix = tmp_path / "images.cix"
    build_index_file([shards], cix)
    index = Index.load(cix, mmap=False)
    index.fingerprint = ModelFingerprint("00" * 32, "fp32", index.dim, "other-model")
    index.save(cix)
    query = ["search", "shapes", "--index", str(cix), "--query", "a red circle", *FP32]
    assert main(query) == 1
    assert "built with model other-model" in capsys.readouterr().err
    assert main([*query, "--allow-model-mismatch"]) == 0


def test_shards_of_different_models_are_not_mixed(shards: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.parquet"
    dim = ShardReader(next(shards.glob("part-*.parquet"))).dim
    fp = ModelFingerprint("11" * 32, "fp32", dim, "other")
    write_shard(other, np.arange(2), ["x", "y"], np.eye(2, dim, dtype=np.float32), fp)
    with pytest.raises(ModelMismatchError):
        build_index_file([shards, other], tmp_path / "mixed.cix")
    assert not (tmp_path / "mixed.cix").exists()
    result = build_index_file([shards, other], tmp_path / "mixed.cix", allow_model_mismatch=True)
    assert result.fingerprint is None
    assert Index.load(tmp_path / "mixed.cix").keys_of([result.rows - 1]) == ["y"]


def test_npy_outputs_build_an_index(tmp_path: Path) -> None:
    write_images(tmp_path / "p", 4)
    npy = tmp_path / "e.npy"
    assert main(["embed", "shapes", str(tmp_path / "p"), "-o", str(npy), *FP32]) == 0
    assert main(["index", "build", str(npy), "-o", str(tmp_path / "e.cix")]) == 0
    index = Index.load(tmp_path / "e.cix")
    got = json.loads(
        "[" + ",".join((tmp_path / "e.npy.ids.jsonl").read_text().splitlines()[1:]) + "]"
    )
    assert index.keys_of(range(4)) == [r["path"] for r in got]


def test_legacy_index_with_paths_json_still_searches(tmp_path: Path, capsys) -> None:
    """An index and .paths.json written by the previous `cliprt search --index`."""
    import cliprt

    paths = [str(p) for p in write_images(tmp_path / "p", 3)]
    model = cliprt.load("shapes", precision="fp32", device="cpu", threads=2, spinning=False)
    index = Index(model.embed_dim)
    index.add(model.encode_images(paths))  # no keys, no fingerprint: a version 1 file
    cix = tmp_path / "old.cix"
    index.save(cix)
    (tmp_path / "old.cix.paths.json").write_text(json.dumps(paths))
    assert main(["search", "shapes", "--index", str(cix), "--query", "a", "-k", "3", *FP32]) == 0
    names = [line.split()[-1] for line in capsys.readouterr().out.splitlines()[1:]]
    assert sorted(names) == sorted(paths)
    (tmp_path / "old.cix.paths.json").write_text(json.dumps(paths[:2]))
    assert main(["search", "shapes", "--index", str(cix), "--query", "a", *FP32]) == 1
    assert "do not belong together" in capsys.readouterr().err
