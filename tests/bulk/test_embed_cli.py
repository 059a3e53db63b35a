"""`cliprt embed` over folders, globs and file lists: shards, .npy with ids, failures,
resume, progress, outputs checked before the work."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from cliprt.cli import main
from cliprt.errors import InputError
from cliprt.runtime.bulk_progress import JobProgress
from cliprt.runtime.shards import ShardReader, read_npy_with_ids

from .conftest import write_images

pytest.importorskip("pyarrow", reason="Parquet shards need pyarrow (the bulk extra)")
pytest.importorskip("tqdm", reason="the progress bar needs tqdm (the bulk extra)")

FP32 = ["--precision", "fp32", "--device", "cpu", "--threads", "2"]


def _read_shards(folder: Path) -> tuple[list[str], np.ndarray, list[int]]:
    paths, embs, ids = [], [], []
    for shard in sorted(folder.glob("part-*.parquet")):
        reader = ShardReader(shard)
        for b in reader.batches(rows=5):
            paths += b.paths
            embs.append(b.embeddings)
        import pyarrow.parquet as pq

        ids += pq.read_table(shard, columns=["id"]).column(0).to_pylist()
    return paths, np.concatenate(embs), ids


def test_shards_hold_good_images_and_failures_are_reported(
    shapes32, mixed_dir, tmp_path: Path
) -> None:
    folder, good, bad = mixed_dir
    out = tmp_path / "shards"
    assert main(["embed", "shapes", str(folder), "-o", str(out), "--shard-size", "4", *FP32]) == 0
    paths, emb, ids = _read_shards(out)
    assert sorted(paths) == sorted(str(p) for p in good)
    ref = shapes32.encode_images(paths, batch_size=32)
    np.testing.assert_array_equal(emb, ref)  # same model, same precision: bit-identical
    stream = sorted(str(p) for p in [*good, *bad])  # folder walk order = sorted here
    assert [stream[i] for i in ids] == paths
    report = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert sorted(r["path"] for r in report) == sorted(str(p) for p in bad)
    assert {r["error"] for r in report} == {"InputError"}
    for r in report:
        assert r["path"] == stream[r["index"]]
        assert f"image {r['index']} (" in r["message"]
    fp = ShardReader(next(out.glob("part-*.parquet"))).fingerprint
    assert fp is not None and fp.precision == "fp32" and fp.embed_dim == shapes32.embed_dim
    assert len(list(out.glob("part-*.parquet"))) == 4  # 15 files / 4 per shard
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def test_resume_redoes_only_unfinished_shards(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    write_images(folder, 10)
    out = tmp_path / "shards"
    args = ["embed", "shapes", str(folder), "-o", str(out), "--shard-size", "3", *FP32, "-q"]
    assert main(args) == 0
    first = _read_shards(out)
    kept = out / "part-00001.parquet"
    stamp = kept.stat().st_mtime_ns
    (out / "part-00002.parquet").unlink()  # as if the job died while writing shard 2
    (out / "part-00003.parquet").unlink()
    assert main(args) == 1  # without --resume: refused, nothing touched
    assert main([*args, "--resume"]) == 0
    assert kept.stat().st_mtime_ns == stamp
    second = _read_shards(out)
    assert first[0] == second[0] and first[2] == second[2]
    np.testing.assert_array_equal(first[1], second[1])
    # Resuming with another shard size or precision would mix up shards: refused.
    assert main([*args[:-3], "--shard-size", "4", "--resume", "-q"]) == 1


def test_npy_records_which_row_is_which_file(shapes32, mixed_dir, tmp_path: Path) -> None:
    folder, good, bad = mixed_dir
    out = tmp_path / "emb.npy"
    assert (
        main(["embed", "shapes", str(folder / "a"), str(folder / "b"), "-o", str(out), *FP32]) == 0
    )
    got = read_npy_with_ids(out)
    assert sorted(got.paths) == sorted(str(p) for p in good)
    np.testing.assert_array_equal(got.embeddings, shapes32.encode_images(got.paths))
    assert got.fingerprint is not None and got.fingerprint.precision == "fp32"
    failures = (tmp_path / "emb.npy.failures.jsonl").read_text().splitlines()
    assert len(failures) == len(bad)
    # A replaced .npy no longer matches its sidecar: detected, not silently paired.
    np.save(out, got.embeddings[::-1])
    with pytest.raises(InputError, match="sha256 differs"):
        read_npy_with_ids(out)


def test_on_error_fail_writes_nothing(mixed_dir, tmp_path: Path) -> None:
    folder, _, _ = mixed_dir
    out = tmp_path / "emb.npy"
    assert main(["embed", "shapes", str(folder), "-o", str(out), "--on-error", "fail", *FP32]) == 1
    assert not out.exists()


def test_globs_and_files_from(shapes32, tmp_path: Path) -> None:
    paths = write_images(tmp_path / "p", 6)
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in paths[:2]) + "\n\n")
    out = tmp_path / "e.npy"
    pattern = str(tmp_path / "p" / "**" / "*.png")
    assert (
        main(["embed", "shapes", pattern, "--files-from", str(listing), "-o", str(out), *FP32]) == 0
    )
    got = read_npy_with_ids(out)
    pngs = sorted(str(p) for p in paths if p.suffix == ".png")
    assert got.paths == pngs + [str(p) for p in paths[:2]]
    np.testing.assert_array_equal(got.embeddings, shapes32.encode_images(got.paths))


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("{file}", "exists and is not a folder"),
        ("{file}/sub", "is not writable"),
        ("{file}/e.npy", "does not exist"),
    ],
)
def test_unwritable_output_fails_before_the_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str, message: str
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    write_images(tmp_path / "p", 1)
    # A model name that does not exist: the output error must come first.
    rc = main(["embed", "no-such-model", str(tmp_path / "p"), "-o", output.format(file=blocker)])
    assert rc == 1
    err = capsys.readouterr().err
    assert message in err and "no model folder" not in err


def test_progress_degrades_to_log_lines_off_a_terminal() -> None:
    stream = io.StringIO()
    bar = JobProgress(100, stream=stream, log_every_s=0.0)
    bar.update(40)
    bar.update(60)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in stream.getvalue()
    assert "40/100" in lines[0] and "img/s" in lines[0] and "100/100" in lines[-1]
