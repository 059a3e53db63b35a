"""`cliprt verify`: the probes recorded at export, recomputed by the runtime here."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

import cliprt
from cliprt.cli import main
from cliprt.errors import ModelFolderError
from cliprt.manifest import read_manifest, write_manifest
from cliprt.runtime.probes import N_IMAGES, RECIPE, TEXTS, ProbeRecord, probe_images
from cliprt.runtime.verify import verify


def test_probe_images_are_deterministic_and_varied() -> None:
    a = probe_images(RECIPE, 0, 64)
    b = probe_images(RECIPE, 0, 64)
    assert len(a) == N_IMAGES
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))
    assert len({im.size for im in a}) >= 3  # square, wide, tall, small
    c = probe_images(RECIPE, 1, 64)
    assert not np.array_equal(np.asarray(a[0]), np.asarray(c[0]))
    with pytest.raises(ValueError, match="unknown probe recipe"):
        probe_images("cliprt-probes-v999", 0, 64)


def test_manifest_records_probes_and_verify_passes_every_precision(tiny_model_dir: Path) -> None:
    man = read_manifest(tiny_model_dir)
    record = ProbeRecord.from_dict(man.probes)
    assert record.texts == TEXTS and record.image_ref.shape == (N_IMAGES, man.embed_dim)
    for precision in man.precisions("vision"):
        with cliprt.load(tiny_model_dir, precision=precision, device="cpu") as model:
            report = verify(model)
        assert report.passed, report.text()
        assert [c.tower for c in report.checks] == ["vision", "text"]
        vision = report.checks[0]
        if precision == "fp32":
            assert vision.max_abs_diff < 1e-4 and vision.min_cosine > 0.99999
        assert report.text().endswith("PASS")


def _copy_with_probes(src: Path, dst: Path, **changes: object) -> Path:
    shutil.copytree(src, dst)
    man = read_manifest(dst)
    write_manifest(dst, dataclasses.replace(man, **changes))
    return dst


def test_verify_fails_with_exit_1_when_a_reference_disagrees(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    man = read_manifest(tiny_model_dir)
    record = ProbeRecord.from_dict(man.probes)
    # References of another model: the text references rolled by one row.
    wrong = dataclasses.replace(record, text_ref=np.roll(record.text_ref, 1, axis=0))
    folder = _copy_with_probes(tiny_model_dir, tmp_path / "m", probes=wrong.to_dict())
    assert main(["verify", str(folder), "--precision", "fp32", "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "text" in out and "FAIL" in out and "max abs diff" in out
    assert main(["verify", str(tiny_model_dir), "--precision", "all", "--device", "cpu"]) == 0


def test_folder_without_probes_is_a_clear_error(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy_with_probes(tiny_model_dir, tmp_path / "old", probes={})
    with (
        cliprt.load(folder, precision="fp32", device="cpu") as model,
        pytest.raises(ModelFolderError, match="no device probes"),
    ):
        verify(model)
