"""cliprt.ray.ClipEmbedder called as Ray calls it in each actor, without a cluster (it
needs only pyarrow): so CI, which does not install Ray, still checks the adapter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .conftest import corrupt, write_images

pa = pytest.importorskip("pyarrow", reason="cliprt.ray's output is Arrow (pyarrow)")


@pytest.mark.parametrize("batch_format", ["pyarrow", "numpy"])
def test_embedder_rows_match_encode_images_and_keep_failures(
    shapes32, tmp_path: Path, batch_format: str
) -> None:
    from cliprt.ray import ClipEmbedder

    paths = write_images(tmp_path, 6)
    corrupt(paths[2])
    data = [p.read_bytes() for p in paths] + [b""]
    names = [str(p) for p in paths] + [str(tmp_path / "empty.jpg")]
    if batch_format == "pyarrow":
        batch = pa.table({"bytes": pa.array(data, pa.binary()), "path": names})
    else:
        batch = {"bytes": np.array(data, dtype=object), "path": np.array(names)}
    embedder = ClipEmbedder("shapes", precision="fp32", threads=1, batch_size=4)
    out = embedder(batch)
    assert out.schema.equals(embedder.schema, check_metadata=True)
    assert out.column("path").to_pylist() == names
    errors = out.column("error").to_pylist()
    assert [i for i, e in enumerate(errors) if e] == [2, 6]
    assert set(errors) == {None, "InputError"}
    messages = out.column("message").to_pylist()
    assert names[2] in messages[2] and messages[0] is None
    emb = out.column("embedding")
    assert emb.is_null().to_pylist() == [e is not None for e in errors]
    good = [i for i, e in enumerate(errors) if e is None]
    got = np.stack([np.asarray(emb[i].as_py(), dtype=np.float32) for i in good])
    np.testing.assert_array_equal(got, shapes32.encode_images([paths[i] for i in good]))
    assert embedder.fingerprint == shapes32.fingerprint
