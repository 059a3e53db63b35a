"""cliprt.ray: bulk image embedding on Ray Data, beyond one machine (the ``ray`` extra).

:class:`ClipEmbedder` is a callable class for ``Dataset.map_batches``: Ray starts a pool
of actors, each loads the model once (with an explicit number of onnxruntime threads)
and embeds batches of ``{bytes, path}`` rows with cliprt's own decoding and
preprocessing (the same as ``cliprt.load(...).encode_images``: no Ray-side resize). A
file that cannot be decoded never kills the job: its row keeps its path, a null
embedding and the error class and message in their own columns.

The pipeline (:func:`embed_files` runs it)::

    import ray
    from cliprt.ray import ClipEmbedder

    ds = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True, num_cpus=0)
    ds = ds.map_batches(
        ClipEmbedder,
        fn_constructor_kwargs={"model": "/models/clip-vit-b32", "precision": "int8", "threads": 4},
        batch_size=64,
        batch_format="pyarrow",
        concurrency=8,       # actors (each holds one loaded model)
        num_cpus=4,          # CPUs reserved per actor = its onnxruntime threads
    )
    ds.write_parquet("s3://bucket/shards/", ray_remote_args={"num_cpus": 0})

Reads and writes reserve no CPU (``num_cpus=0``): with actors holding every core, IO
tasks that need a CPU would wait forever behind them.

then ``cliprt index build shards/ -o photos.cix`` (rows with an error are skipped) and
:func:`cliprt.runtime.shards.write_failures_report` for the failures.

Output rows (one per input file; Parquet schema metadata carries the model fingerprint
under ``cliprt``, as ``cliprt embed``'s shards do):

    path       string
    embedding  fixed_size_list<float32>[D], null where the file failed
    error      string, null where it succeeded (e.g. "InputError")
    message    string, null where it succeeded
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from cliprt.errors import InputError
from cliprt.runtime.preprocess import DEFAULT_MAX_IMAGE_PIXELS
from cliprt.runtime.shards import META_KEY, failures_schema_fields, pyarrow
from cliprt.runtime.sources import IMAGE_SUFFIXES

__all__ = ["ClipEmbedder", "embed_files"]


def _ray() -> Any:
    try:
        import ray
        import ray.data  # the Dataset API
    except ImportError as exc:
        raise InputError('cliprt.ray needs Ray Data; pip install "cliprt[ray]"') from exc
    return ray


class ClipEmbedder:
    """Embeds batches of image files inside a Ray actor (one loaded model per actor).

    Args:
        model: a model folder path or shipped model name, readable on every node.
        precision: "fp32", "fp16", "int8" or "auto".
        device: "cpu" or "cuda" (give the actors ``num_gpus=1`` then).
        threads: onnxruntime threads of this actor's sessions; reserve as many CPUs
            for the actor (``num_cpus=threads`` in map_batches) so actors do not
            oversubscribe a node.
        batch_size: images per vision tower call inside a Ray batch.
        exif_transpose: apply EXIF orientation (as ``cliprt.load``).
        max_image_pixels: refuse larger images (decompression bombs).
        bytes_column: the column holding encoded image bytes.
        path_column: the column naming each file.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "shapes",
        *,
        precision: str = "auto",
        device: str = "cpu",
        threads: int = 1,
        batch_size: int = 32,
        exif_transpose: bool = True,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        bytes_column: str = "bytes",
        path_column: str = "path",
    ) -> None:
        import cliprt

        self._model = cliprt.load(
            model,
            precision=precision,
            device=device,
            threads=threads,
            spinning=False,  # actors share nodes: idle threads must not burn CPUs
            exif_transpose=exif_transpose,
            max_image_pixels=max_image_pixels,
            decode_workers=threads,
        )
        self._batch_size = batch_size
        self._bytes, self._path = bytes_column, path_column
        self.fingerprint = self._model.fingerprint
        self.schema = output_schema(self._model.embed_dim, self.fingerprint)

    def __call__(self, batch: Any) -> Any:
        """One Ray batch (a pyarrow Table, or a dict of numpy arrays) -> a pyarrow
        Table with one row per input (see the module docstring)."""
        pa = pyarrow()
        if isinstance(batch, pa.Table):
            data, paths = (
                batch.column(self._bytes).to_pylist(),
                batch.column(self._path).to_pylist(),
            )
        else:
            data, paths = list(batch[self._bytes]), [str(p) for p in batch[self._path]]
        n, dim = len(paths), self._model.embed_dim
        emb = np.zeros((n, dim), dtype=np.float32)
        error: list[str | None] = [None] * n
        message: list[str | None] = [None] * n
        if n:
            res = self._model.encode_images(data, batch_size=self._batch_size, errors="skip")
            emb[res.indices] = res.embeddings
            for f in res.failures:
                # Items are bytes here: name the file in the message, not "bytes".
                error[f.index] = f.error
                message[f.index] = f.message.replace(
                    f"image {f.index} (bytes)", f"image {paths[f.index]!r}", 1
                )
        ok = np.asarray([e is None for e in error], dtype=bool)
        flat = pa.array(emb.reshape(-1), pa.float32())
        embedding = pa.FixedSizeListArray.from_arrays(flat, dim, mask=pa.array(~ok))
        return pa.Table.from_arrays(
            [
                pa.array(paths, pa.string()),
                embedding,
                pa.array(error, pa.string()),
                pa.array(message, pa.string()),
            ],
            schema=self.schema,
        )


def output_schema(dim: int, fingerprint: Any) -> Any:
    """The Arrow schema of ClipEmbedder's output (cliprt's shard metadata included)."""
    import json

    pa = pyarrow()
    meta = {"format": 1, "fingerprint": fingerprint.to_dict(), "precision": fingerprint.precision}
    return pa.schema(
        [
            ("path", pa.string()),
            ("embedding", pa.list_(pa.float32(), dim)),
            *failures_schema_fields(),
        ],
        metadata={META_KEY: json.dumps(meta).encode()},
    )


def embed_files(
    paths: str | Sequence[str],
    output: str,
    *,
    model: str | os.PathLike[str] = "shapes",
    precision: str = "auto",
    actors: int = 1,
    threads_per_actor: int = 1,
    batch_size: int = 64,
    read_tasks: int | None = None,
    io_cpus: float = 0.0,
) -> None:
    """Runs the documented pipeline: read files -> embed in an actor pool -> write
    Parquet shards under `output` (needs a running Ray, e.g. ``ray.init()``).

    Args:
        paths: files or folders (any filesystem Ray reads: local, s3://, gs://);
            folders are read for image suffixes only.
        output: the folder for the Parquet shards.
        model: the model folder (or shipped name), readable on every node.
        precision: the vision tower variant ("int8" on CPUs, "fp16" on GPUs).
        actors: actors in the pool, each holding one loaded model.
        threads_per_actor: onnxruntime threads and CPUs reserved per actor.
        batch_size: rows per Ray batch handed to an actor.
        read_tasks: blocks to read the files into (None: Ray decides).
        io_cpus: CPUs reserved by each read and write task. 0 (default): file IO
            reserves none, so an actor pool that reserves every core of the cluster
            (actors x threads_per_actor = CPUs) cannot starve the reads that feed it,
            a deadlock Ray Data otherwise meets.
    """
    ray = _ray()
    ds = ray.data.read_binary_files(
        paths,
        include_paths=True,
        file_extensions=[s.lstrip(".") for s in IMAGE_SUFFIXES],
        override_num_blocks=read_tasks,
        num_cpus=io_cpus,
    )
    ds = ds.map_batches(
        ClipEmbedder,
        fn_constructor_kwargs={
            "model": os.fspath(model),
            "precision": precision,
            "threads": threads_per_actor,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        concurrency=actors,
        num_cpus=threads_per_actor,
    )
    ds.write_parquet(output, ray_remote_args={"num_cpus": io_cpus})
