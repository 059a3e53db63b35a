"""ClipModel: an exported model folder loaded with onnxruntime, and `load` that makes one.

    import cliprt
    model = cliprt.load("shapes")                 # a shipped model, or a folder path
    probs = model.classify(["cat.jpg"], ["a photo of a cat", "a photo of a dog"])
    index = model.build_index(paths)              # image search
    scores, ids = model.search(index, texts=["a red circle"], k=5)

Torch-free: only numpy, onnxruntime, tokenizers and PIL.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from cliprt.errors import InputError, ModelFolderError, ProviderError
from cliprt.manifest import TOWERS, Manifest, read_manifest, verified_path
from cliprt.runtime.cpu import cpu_features
from cliprt.runtime.images import (
    DEFAULT_MAX_IMAGE_PIXELS,
    DecodeOptions,
    ImageInput,
    load_and_preprocess,
)
from cliprt.runtime.index import Index
from cliprt.runtime.openvino_session import OpenVinoTowerSession, openvino_available
from cliprt.runtime.precision import OPENVINO, PrecisionChoice, choose_precision
from cliprt.runtime.progress import Progress
from cliprt.runtime.providers import (
    CudaOptions,
    Device,
    default_threads,
    resolve_device,
)
from cliprt.runtime.providers import session_options as make_session_options
from cliprt.runtime.sessions import TowerSession, _set_config
from cliprt.runtime.tokenizer import ClipTokenizer, check_texts

logger = logging.getLogger("cliprt.runtime")

__all__ = ["ClipModel", "load", "resolve_model", "shipped_folder", "shipped_models"]


def shipped_folder(name: str) -> Path | None:
    """The folder models/`name` shipped inside the installed cliprt package (a model
    folder or a checkpoint), or None where the package has none of that name."""
    folder = resources.files("cliprt") / "models" / name
    return Path(str(folder)) if folder.is_dir() else None


def shipped_models() -> list[str]:
    """Names of the model folders shipped inside the cliprt package (e.g. "shapes")."""
    root = resources.files("cliprt") / "models"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "manifest.json").is_file())


def resolve_model(model: str | os.PathLike[str]) -> Path:
    """A model folder path from a path, or from the name of a shipped model.

    Raises:
        ModelFolderError: neither an existing path nor a shipped name.
    """
    path = Path(model)
    if path.exists():
        return path
    name = os.fspath(model)
    if name and "/" not in name and os.sep not in name:
        shipped_path = shipped_folder(name)
        if shipped_path is not None:
            return shipped_path
    shipped = ", ".join(shipped_models()) or "none"
    raise ModelFolderError(
        f"no model folder {name!r}: not an existing path nor a shipped model (shipped: {shipped}); "
        "or pass a folder exported with `cliprt export`"
    )


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    # The towers are exported without normalisation (CLIPModel.forward normalises);
    # normalising here is idempotent should a future export do it in the graph.
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)


def _image_list(images: Any) -> list[Any]:
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview, Image.Image)):
        return [images]
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    if hasattr(images, "read"):
        return [images]
    try:
        items = list(images)
    except TypeError as exc:
        raise InputError(
            f"images must be a list of paths, bytes, file objects, PIL images or arrays, got {type(images).__name__}"
        ) from exc
    if not items:
        raise InputError("no images given: pass at least one")
    return items


def _check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
    return batch_size


class ClipModel:
    """A CLIP model folder loaded for inference; make one with :func:`load`.

    One InferenceSession per tower is shared by all threads: every method may be called
    concurrently. Images are decoded and preprocessed in a small thread pool, the next
    batch while the current one runs.

    Attributes:
        folder: the model folder.
        manifest: its manifest.
        device: "cpu" or "cuda:N", as resolved.
        precision: "fp32", "fp16", "int8" or "bf16", as resolved.
        precision_reason: why this precision and backend were chosen (one sentence).
        precision_hint: a faster path this machine lacks, with how to install it, or None.
        backend: "onnxruntime" or "openvino".
        providers: the execution providers each tower's session really got.
        embed_dim: width D of the embeddings.
        logit_scale: the multiplier of cosine similarities before the softmax (CLIP's
            exp(logit_scale), 100 for OpenAI's checkpoints).
    """

    def __init__(
        self,
        folder: Path,
        manifest: Manifest,
        device: Device,
        precision: str,
        vision: TowerSession | OpenVinoTowerSession,
        text: TowerSession | OpenVinoTowerSession,
        tokenizer: ClipTokenizer,
        decode: DecodeOptions,
        workers: int,
    ) -> None:
        self.folder = folder
        self.manifest = manifest
        self.device = str(device)
        self.precision = precision
        self.precision_reason = ""
        self.precision_hint: str | None = None
        self.backend = "onnxruntime"
        self.vision = vision
        self.text = text
        self.tokenizer = tokenizer
        self.decode_options = decode
        self.providers = {"vision": vision.providers, "text": text.providers}
        self.embed_dim = manifest.embed_dim
        self.logit_scale = float(manifest.logit_scale)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cliprt-decode")

    def __repr__(self) -> str:
        return (
            f"ClipModel({str(self.folder)!r}, device={self.device!r}, precision={self.precision!r}, "
            f"embed_dim={self.embed_dim})"
        )

    def close(self) -> None:
        """Stops the decoding threads (sessions are freed with the object)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ClipModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- encoding --------------------------------------------------------------------

    def preprocess(self, images: Iterable[ImageInput] | ImageInput) -> np.ndarray:
        """Pixel values float32 (n, 3, H, W) exactly as the vision tower receives them."""
        items = _image_list(images)
        pre, opts = self.manifest.preprocessing, self.decode_options
        return np.stack([load_and_preprocess(item, i, pre, opts) for i, item in enumerate(items)])

    def encode_images(
        self,
        images: Iterable[ImageInput] | ImageInput,
        *,
        batch_size: int = 32,
        progress: bool = False,
    ) -> np.ndarray:
        """L2-normalised image embeddings, float32 (n, D).

        Args:
            images: paths, encoded bytes, binary file objects, PIL images, HxWx3 uint8
                arrays (RGB), or one of those alone.
            batch_size: images per tower call.
            progress: draw a progress line on stderr.

        Raises:
            InputError: an empty list, or an item that cannot be decoded (named by
                index and path or type).
        """
        items = _image_list(images)
        batch_size = _check_batch_size(batch_size)
        n = len(items)
        out = np.empty((n, self.embed_dim), dtype=np.float32)
        bar = Progress(n, "images") if progress else None
        pre, opts = self.manifest.preprocessing, self.decode_options
        if n == 1:
            out[:] = self.vision.run(load_and_preprocess(items[0], 0, pre, opts)[None])
            return _l2_normalize(out)
        starts = list(range(0, n, batch_size))

        def submit(start: int) -> list[Future[np.ndarray]]:
            stop = min(start + batch_size, n)
            return [
                self._pool.submit(load_and_preprocess, items[i], i, pre, opts)
                for i in range(start, stop)
            ]

        pending = submit(starts[0])
        try:
            for j, start in enumerate(starts):
                # Decode the next batch in the pool while this one runs (PIL and
                # onnxruntime both release the GIL).
                following = submit(starts[j + 1]) if j + 1 < len(starts) else []
                try:
                    pixels = np.stack([f.result() for f in pending])
                finally:
                    pending, current = following, pending
                out[start : start + len(current)] = self.vision.run(pixels)
                if bar:
                    bar.update(len(current))
        except BaseException:
            for f in pending:
                f.cancel()
            raise
        finally:
            if bar:
                bar.close()
        return _l2_normalize(out)

    def encode_texts(
        self, texts: Sequence[str] | str, *, batch_size: int = 256, progress: bool = False
    ) -> np.ndarray:
        """L2-normalised text embeddings, float32 (n, D).

        Each batch is padded to its longest prompt; prompts longer than the context
        length are truncated (EOS kept last).

        Raises:
            InputError: an empty list, a non-string item or an empty string.
        """
        texts = check_texts([texts] if isinstance(texts, str) else texts)
        batch_size = _check_batch_size(batch_size)
        out = np.empty((len(texts), self.embed_dim), dtype=np.float32)
        bar = Progress(len(texts), "texts") if progress else None
        try:
            for start in range(0, len(texts), batch_size):
                chunk = texts[start : start + batch_size]
                out[start : start + len(chunk)] = self.text.run(self.tokenizer(chunk))
                if bar:
                    bar.update(len(chunk))
        finally:
            if bar:
                bar.close()
        return _l2_normalize(out)

    # -- the CLIP use cases ----------------------------------------------------------

    def similarity(
        self,
        images: Iterable[ImageInput] | ImageInput,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
    ) -> np.ndarray:
        """Cosine similarities, float32 (n_images, n_texts)."""
        texts = check_texts(texts)
        img = self.encode_images(images, batch_size=batch_size)
        return img @ self.encode_texts(texts).T

    def classify(
        self,
        images: Iterable[ImageInput] | ImageInput,
        labels: Sequence[str],
        *,
        batch_size: int = 32,
    ) -> np.ndarray:
        """Zero-shot classification as in CLIP: softmax over labels of logit_scale x cosine.

        Args:
            images: as for encode_images.
            labels: label prompts, e.g. ["a photo of a cat", "a photo of a dog"].

        Returns:
            Probabilities float32 (n_images, n_labels); each row sums to 1.

        Raises:
            InputError: no labels, a non-string or empty label, or a bad image.
        """
        labels = check_texts(labels, what="label")
        logits = self.logit_scale * self.similarity(images, labels, batch_size=batch_size).astype(
            np.float64
        )
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    def build_index(
        self,
        images: Iterable[ImageInput] | ImageInput,
        *,
        ids: Sequence[int] | np.ndarray | None = None,
        dtype: str = "fp32",
        batch_size: int = 32,
        progress: bool = False,
    ) -> Index:
        """An :class:`Index` of the images' embeddings (ids default to 0..n-1)."""
        emb = self.encode_images(images, batch_size=batch_size, progress=progress)
        index = Index(self.embed_dim, dtype)
        index.add(emb, ids=None if ids is None else np.asarray(ids, dtype=np.int64))
        return index

    def search(
        self,
        index: Index,
        *,
        texts: Sequence[str] | str | None = None,
        images: Iterable[ImageInput] | ImageInput | None = None,
        k: int = 5,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Text->image (texts=) or image->image (images=) search of `index`.

        Returns:
            (scores float32 (nq, k), ids int64 (nq, k)), best first; cosine scores.
        """
        if (texts is None) == (images is None):
            raise InputError("search needs exactly one of texts= or images=")
        if index.dim != self.embed_dim:
            raise InputError(
                f"the index holds {index.dim}-d vectors but this model makes {self.embed_dim}-d "
                "embeddings; build the index with this model"
            )
        q = self.encode_texts(texts) if texts is not None else self.encode_images(images)
        return index.search(q, k)

    def warmup(self, batch_sizes: Iterable[int] = (1,)) -> None:
        """Runs both towers once per batch size so that first calls are not slow
        (allocations, CUDA kernel selection)."""
        size = self.manifest.image_size
        for b in batch_sizes:
            b = _check_batch_size(int(b))
            self.vision.run(np.zeros((b, 3, size, size), dtype=np.float32))
            for length in sorted({8, self.manifest.context_length}):
                ids = np.full((b, length), self.manifest.pad_id, dtype=np.int64)
                ids[:, 0] = self.manifest.bos_id
                self.text.run(ids)


def _tower_session(
    folder: Path,
    manifest: Manifest,
    tower: str,
    choice: PrecisionChoice,
    dev: Device,
    threads: int | None,
    spinning: bool,
    session_options: ort.SessionOptions | None,
    cuda: CudaOptions,
) -> TowerSession | OpenVinoTowerSession:
    variant = manifest.towers[tower][choice.file]
    if choice.backend == OPENVINO:
        return OpenVinoTowerSession(
            verified_path(folder, variant),
            name=tower,
            input_name=variant.input_name,
            output_name=variant.output_name,
            precision=choice.precision,
            threads=threads or default_threads(),
        )
    opts = (
        session_options
        if session_options is not None
        else make_session_options(threads=threads, spinning=spinning)
    )
    # Per-CPU entries (int8 widening without VNNI, ARM64 bf16 fastmath), decided from
    # the CPU this runs on, not the exporting one (see cpu_choice).
    for key, value in choice.session_config.items():
        _set_config(opts, key, value)
    return TowerSession(
        verified_path(folder, variant),
        name=tower,
        input_name=variant.input_name,
        output_name=variant.output_name,
        device=dev,
        options=opts,
        cuda=cuda,
        cuda_graph_batch=cuda.cuda_graph_batch if tower == "vision" else None,
        out_dim=manifest.embed_dim,
    )


def load(
    model: str | os.PathLike[str],
    precision: str = "auto",
    device: str | int = "auto",
    threads: int | None = None,
    *,
    session_options: ort.SessionOptions | None = None,
    spinning: bool = True,
    exif_transpose: bool = True,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    decode_workers: int | None = None,
    warmup_batches: Iterable[int] = (),
    cuda: CudaOptions | None = None,
) -> ClipModel:
    """Loads an exported model folder (or a shipped model by name) for inference.

    Args:
        model: a folder written by `cliprt export`, or the name of a shipped model
            ("shapes").
        precision: "fp32", "fp16", "int8", "bf16" or "auto": picked per machine (CUDA ->
            fp16; an AMX CPU with OpenVINO installed -> bf16; other CPUs -> int8 when the
            folder has it, else fp32); see cliprt.runtime.precision and
            ClipModel.precision_reason.
        device: "cpu", "cuda", "cuda:N" or "auto" (CUDA when onnxruntime's CUDA provider
            is installed). CUDA without it is a ProviderError, never a CPU fallback.
        threads: onnxruntime intra-op threads per session (default: the CPUs available,
            at most 16).
        session_options: an ort.SessionOptions used as given instead of cliprt's
            (threads and spinning are then ignored).
        spinning: let onnxruntime's idle threads spin (lower latency; turn off on a
            shared box).
        exif_transpose: apply EXIF orientation to decoded images (transformers does not).
        max_image_pixels: refuse images with more pixels (decompression bombs).
        decode_workers: threads decoding and preprocessing images (default: min(4, CPUs)).
        warmup_batches: batch sizes to run once at load, e.g. (1, 8).
        cuda: CUDA execution provider settings (memory limit, TF32, CUDA graphs).

    Raises:
        ModelFolderError: no such folder or shipped name, or a missing/altered file.
        FormatVersionError: the folder was written by a newer cliprt.
        ProviderError: CUDA asked for but unavailable, or int8 on CUDA.
        InputError: an unknown device or precision string.
    """
    folder = resolve_model(model)
    manifest = read_manifest(folder)
    if not isinstance(max_image_pixels, int) or max_image_pixels < 1:
        raise InputError(f"max_image_pixels must be a positive int, got {max_image_pixels!r}")
    dev = resolve_device(device)
    tok = ClipTokenizer(
        verified_path(folder, manifest.tokenizer),
        context_length=manifest.context_length,
        pad_id=manifest.pad_id,
    )
    cuda = cuda or CudaOptions()

    def sessions(dev: Device) -> tuple[PrecisionChoice, dict[str, Any]]:
        choice = choose_precision(
            precision,
            dev,
            manifest,
            str(folder),
            cpu=cpu_features(),
            openvino=openvino_available(),
        )
        return choice, {
            tower: _tower_session(
                folder, manifest, tower, choice, dev, threads, spinning, session_options, cuda
            )
            for tower in TOWERS
        }

    try:
        choice, towers = sessions(dev)
    except ProviderError as exc:
        # "auto" may find the CUDA EP installed on a machine without a usable GPU; an
        # explicit "cuda" never falls back.
        if (device is not None and str(device).strip().lower() != "auto") or dev.kind != "cuda":
            raise
        logger.warning("device='auto': CUDA is installed but unusable (%s); using the CPU", exc)
        dev = Device("cpu")
        choice, towers = sessions(dev)
    prec = choice.precision
    clip = ClipModel(
        folder,
        manifest,
        dev,
        prec,
        towers["vision"],
        towers["text"],
        tok,
        DecodeOptions(exif_transpose=exif_transpose, max_image_pixels=max_image_pixels),
        workers=decode_workers or min(4, default_threads()),
    )
    clip.backend = choice.backend
    clip.precision_reason = choice.reason
    clip.precision_hint = choice.hint
    logger.info(
        "loaded %s: device=%s precision=%s providers=%s (%s)",
        folder,
        clip.device,
        prec,
        clip.providers,
        choice.reason,
    )
    if choice.hint:
        logger.warning("cliprt: a faster path exists here: %s", choice.hint)
    if warmup_batches:
        clip.warmup(warmup_batches)
    return clip
