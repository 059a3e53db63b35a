"""encode_images(errors="skip"): a bad item costs only itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cliprt.errors import InputError
from cliprt.runtime.failures import EncodeResult

from .conftest import corrupt, write_images


def test_skip_returns_good_rows_and_typed_failures(shapes32, tmp_path: Path) -> None:
    paths = write_images(tmp_path, 9)
    bad = {2, 5}
    for i in bad:
        corrupt(paths[i])
    items: list = [*paths, b"not an image at all"]
    res = shapes32.encode_images(items, batch_size=4, errors="skip")
    assert isinstance(res, EncodeResult)
    assert not res.ok
    assert res.indices.tolist() == [i for i in range(9) if i not in bad]
    assert [f.index for f in res.failures] == [2, 5, 9]
    assert res.failures[0].path == str(paths[2])
    assert res.failures[2].path is None
    assert {f.error for f in res.failures} == {"InputError"}
    assert "cannot decode" in res.failures[0].message or "identify" in res.failures[0].message
    good = [paths[i] for i in res.indices]
    ref = shapes32.encode_images(good, batch_size=4)
    np.testing.assert_allclose(res.embeddings, ref, atol=1e-6)
    assert res.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(res.embeddings, axis=1), 1.0, atol=1e-5)


def test_skip_without_failures_equals_raise(shapes32, tmp_path: Path) -> None:
    paths = write_images(tmp_path, 5)
    res = shapes32.encode_images(paths, batch_size=2, errors="skip")
    assert res.ok and len(res) == 5 and res.failures == []
    np.testing.assert_array_equal(res.embeddings, shapes32.encode_images(paths, batch_size=2))


def test_all_bad_gives_empty_result(shapes32, tmp_path: Path) -> None:
    paths = [corrupt(p) for p in write_images(tmp_path, 3)]
    res = shapes32.encode_images(paths, errors="skip")
    assert res.embeddings.shape == (0, shapes32.embed_dim)
    assert len(res.failures) == 3


def test_raise_is_still_the_default(shapes32, tmp_path: Path) -> None:
    paths = write_images(tmp_path, 3)
    corrupt(paths[1])
    with pytest.raises(InputError, match="image 1"):
        shapes32.encode_images(paths)


def test_unknown_errors_mode(shapes32, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="errors must be"):
        shapes32.encode_images(write_images(tmp_path, 1), errors="ignore")
