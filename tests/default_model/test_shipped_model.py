"""The shipped `shapes` model folder is the export of the shipped checkpoint: the
torch-free runtime on it equals transformers' CLIPModel on the checkpoint. (Its
behaviour and accuracy on the runtime alone: tests/shipped/.)"""

from __future__ import annotations

import numpy as np
import pytest

import cliprt
from training import evaluate


def test_shipped_checkpoint_matches_the_exported_fp32_folder() -> None:
    pytest.importorskip("torch", reason="needs the export extra (torch)")
    pytest.importorskip("transformers", reason="needs the export extra (transformers)")
    from cliprt.shapes import generate
    from cliprt.shipped import find_checkpoint

    checkpoint = find_checkpoint("shapes-checkpoint")
    if checkpoint is None:
        pytest.skip("the shapes checkpoint is in cliprt's source tree; this install has none")
    images, specs = generate(8, seed=42)
    texts = [s.caption(0) for s in specs]
    ref_img, ref_txt = evaluate.pytorch_encoders(checkpoint, threads=2)
    model = cliprt.load("shapes", precision="fp32", device="cpu", threads=2)

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    np.testing.assert_allclose(model.encode_images(images), unit(ref_img(images)), atol=1e-4)
    np.testing.assert_allclose(model.encode_texts(texts), unit(ref_txt(texts)), atol=1e-4)
