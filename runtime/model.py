"""ClipModel: an exported model folder loaded with onnxruntime, and `load` that makes one.

    import cliprt
    model = cliprt.load("shapes")                 # a shipped model, or a folder path
    probs = model.classify(["cat.jpg"], ["a photo of a cat", "a photo of a dog"])
    index = model.build_index(paths)              # image search
    scores, ids = model.search(index, texts=["a red circle"], k=5)

Torch-free: only numpy, onnxruntime, tokenizers and PIL.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import onnxruntime as ort
from PIL import Image

from cliprt.errors import InputError, ModelClosedError, ModelFolderError, ProviderError
from cliprt.manifest import MANIFEST_NAME, TOWERS, Manifest, read_manifest
from cliprt.runtime.cpu import cpu_features
from cliprt.runtime.failures import EncodeResult, ImageFailure, check_errors_mode
from cliprt.runtime.fingerprint import ModelFingerprint, check_same_model, fingerprint_of
from cliprt.runtime.heap import release_free_heap
from cliprt.runtime.index import Index
from cliprt.runtime.onnx_external import MalformedOnnxError, external_data_locations
from cliprt.runtime.openvino_session import OpenVinoTowerSession, openvino_available
from cliprt.runtime.precision import OPENVINO, PrecisionChoice, choose_precision
from cliprt.runtime.preprocess import (
    DEFAULT_MAX_IMAGE_PIXELS,
    DecodeOptions,
    ImageInput,
    load_and_preprocess,
    pil_pixel_limit,
)
from cliprt.runtime.progress import Progress
from cliprt.runtime.providers import (
    CudaOptions,
    Device,
    default_threads,
    resolve_device,
)
from cliprt.runtime.providers import session_options as make_session_options
from cliprt.runtime.sessions import TowerSession, _set_config
from cliprt.runtime.threads import check_threads
from cliprt.runtime.tokenizer import ClipTokenizer, check_texts
from cliprt.runtime.vectors import l2_normalize
from cliprt.shipped import shipped_folder, shipped_models
from cliprt.verified_files import checked_path

if TYPE_CHECKING:
    from cliprt.runtime.batching import Batcher

logger = logging.getLogger("cliprt.runtime")

__all__ = [
    "ClipModel",
    "classify_embeddings",
    "load",
    "resolve_model",
    "shipped_folder",
    "shipped_models",
]


def resolve_model(model: str | os.PathLike[str]) -> Path:
    """A model folder path from a path, or from the name of a shipped model.

    Raises:
        InputError: `model` is not a str or os.PathLike.
        ModelFolderError: neither an existing path nor a shipped name.
    """
    if not isinstance(model, (str, os.PathLike)):
        raise InputError(
            f"model must be a folder path (str or os.PathLike) or a shipped model's name, got "
            f"{type(model).__name__} {model!r}"
        )
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


def classify_embeddings(
    image_embeds: np.ndarray,
    label_embeds: np.ndarray,
    logit_scale: float,
    *,
    scoring: str = "softmax",
    logit_bias: float = 0.0,
) -> np.ndarray:
    """Zero-shot scores from normalised embeddings, in float64; float32 (n_images,
    n_labels). scoring "softmax" (CLIP, OpenCLIP): the softmax over labels of
    logit_scale x cosine; "sigmoid" (SigLIP): sigmoid(logit_scale x cosine + logit_bias)
    per pair."""
    logits = logit_scale * (image_embeds @ label_embeds.T).astype(np.float64)
    if scoring == "sigmoid":
        return (1.0 / (1.0 + np.exp(-(logits + logit_bias)))).astype(np.float32)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


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
    value = None
    if not isinstance(batch_size, bool):
        try:
            value = operator.index(batch_size)
        except TypeError:
            value = None
    if value is None or value < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
    return value


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
        self.logit_bias = float(manifest.logit_bias)
        self.scoring = manifest.scoring
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cliprt-decode")
        self._closed = False
        self._fingerprint: ModelFingerprint | None = None

    def __repr__(self) -> str:
        return (
            f"ClipModel({str(self.folder)!r}, device={self.device!r}, precision={self.precision!r}, "
            f"embed_dim={self.embed_dim})"
        )

    @property
    def fingerprint(self) -> ModelFingerprint:
        """Which model and precision make this model's embeddings (recorded in shards
        and index files; search refuses an index of another model)."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint_of(self)
        return self._fingerprint

    def close(self) -> None:
        """Stops the decoding threads (sessions are freed with the object). Encoding
        afterwards raises ModelClosedError."""
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _check_open(self) -> None:
        if self._closed:
            raise ModelClosedError(
                f"this model ({self.folder}) was closed; load it again with cliprt.load()"
            )

    def __enter__(self) -> ClipModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- encoding --------------------------------------------------------------------

    def preprocess(self, images: Iterable[ImageInput] | ImageInput) -> np.ndarray:
        """Pixel values float32 (n, 3, H, W) exactly as the vision tower receives them."""
        self._check_open()
        items = _image_list(images)
        pre, opts = self.manifest.preprocessing, self.decode_options
        return np.stack([load_and_preprocess(item, i, pre, opts) for i, item in enumerate(items)])

    @overload
    def encode_images(
        self,
        images: Iterable[ImageInput] | ImageInput,
        *,
        batch_size: int = ...,
        progress: bool = ...,
        errors: Literal["raise"] = ...,
    ) -> np.ndarray: ...

    @overload
    def encode_images(
        self,
        images: Iterable[ImageInput] | ImageInput,
        *,
        batch_size: int = ...,
        progress: bool = ...,
        errors: Literal["skip"],
    ) -> EncodeResult: ...

    def encode_images(
        self,
        images: Iterable[ImageInput] | ImageInput,
        *,
        batch_size: int = 32,
        progress: bool = False,
        errors: str = "raise",
    ) -> np.ndarray | EncodeResult:
        """L2-normalised image embeddings, float32 (n, D).

        Args:
            images: paths, encoded bytes, binary file objects, PIL images, HxWx3 uint8
                arrays (RGB), or one of those alone.
            batch_size: images per tower call.
            progress: draw a progress line on stderr.
            errors: "raise" (default): the first item that cannot be decoded raises and
                the array (n, D) is returned. "skip": a bad item costs only itself; an
                :class:`~cliprt.runtime.failures.EncodeResult` is returned with the good
                embeddings, the input positions they belong to and one failure (index,
                path, error class, message) per bad item.

        Raises:
            InputError: an empty list, a bad `errors` value, or (errors="raise") an item
                that cannot be decoded (named by index and path or type).
            ModelClosedError: after close().
        """
        self._check_open()
        skip = check_errors_mode(errors) == "skip"
        items = _image_list(images)
        batch_size = _check_batch_size(batch_size)
        n = len(items)
        out = np.empty((n, self.embed_dim), dtype=np.float32)
        good = np.ones(n, dtype=bool)
        failures: list[ImageFailure] = []
        bar = Progress(n, "images") if progress else None
        pre, opts = self.manifest.preprocessing, self.decode_options

        def decode(i: int) -> np.ndarray | ImageFailure:
            if not skip:
                return load_and_preprocess(items[i], i, pre, opts)
            try:
                return load_and_preprocess(items[i], i, pre, opts)
            except Exception as exc:  # a bad item costs only itself (errors="skip")
                return ImageFailure.from_exception(i, items[i], exc)

        def run(start: int, decoded: list[np.ndarray | ImageFailure]) -> None:
            rows = []
            for i, x in enumerate(decoded, start):
                if isinstance(x, ImageFailure):
                    failures.append(x)
                    good[i] = False
                else:
                    rows.append(i)
            pixels = [x for x in decoded if not isinstance(x, ImageFailure)]
            if len(rows) == len(decoded):
                out[start : start + len(decoded)] = self.vision.run(np.stack(pixels))
            elif rows:
                out[rows] = self.vision.run(np.stack(pixels))

        if n == 1:
            run(0, [decode(0)])
        else:
            starts = list(range(0, n, batch_size))

            def submit(start: int) -> list[Future[np.ndarray | ImageFailure]]:
                stop = min(start + batch_size, n)
                try:
                    return [self._pool.submit(decode, i) for i in range(start, stop)]
                except RuntimeError as exc:  # "cannot schedule new futures after shutdown"
                    self._check_open()
                    raise ModelClosedError(f"the decoding threads are stopped ({exc})") from exc

            pending = submit(starts[0])
            try:
                for j, start in enumerate(starts):
                    # Decode the next batch in the pool while this one runs (PIL and
                    # onnxruntime both release the GIL).
                    following = submit(starts[j + 1]) if j + 1 < len(starts) else []
                    try:
                        decoded = [f.result() for f in pending]
                    finally:
                        pending, current = following, pending
                    run(start, decoded)
                    if bar:
                        bar.update(len(current))
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
            finally:
                if bar:
                    bar.close()
        if not skip:
            return l2_normalize(out)
        indices = np.flatnonzero(good).astype(np.int64)
        embeddings = l2_normalize(out[indices]) if failures else l2_normalize(out)
        return EncodeResult(embeddings=embeddings, indices=indices, failures=failures)

    def encode_texts(
        self, texts: Sequence[str] | str, *, batch_size: int = 256, progress: bool = False
    ) -> np.ndarray:
        """L2-normalised text embeddings, float32 (n, D).

        Each batch is padded to its longest prompt; prompts longer than the context
        length are truncated (EOS kept last).

        Raises:
            InputError: an empty list, a non-string item or an empty string.
            ModelClosedError: after close().
        """
        self._check_open()
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
        return l2_normalize(out)

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
        """Zero-shot classification by the model family's own rule (manifest `scoring`).

        - "softmax" (CLIP, OpenCLIP): softmax over the labels of logit_scale x cosine;
          each row sums to 1.
        - "sigmoid" (SigLIP, SigLIP 2): sigmoid(logit_scale x cosine + logit_bias) for
          each image-label pair independently, as SigLIP was trained; rows do not sum to
          1 (an image may match several labels, or none).

        Args:
            images: as for encode_images.
            labels: label prompts, e.g. ["a photo of a cat", "a photo of a dog"].

        Returns:
            Probabilities float32 (n_images, n_labels).

        Raises:
            InputError: no labels, a non-string or empty label, or a bad image.
        """
        labels = check_texts(labels, what="label")
        img = self.encode_images(images, batch_size=batch_size)
        return classify_embeddings(
            img,
            self.encode_texts(labels),
            self.logit_scale,
            scoring=self.scoring,
            logit_bias=self.logit_bias,
        )

    def build_index(
        self,
        images: Iterable[ImageInput] | ImageInput,
        *,
        ids: Sequence[int] | np.ndarray | None = None,
        keys: Sequence[str] | None = None,
        dtype: str = "fp32",
        batch_size: int = 32,
        progress: bool = False,
    ) -> Index:
        """An :class:`Index` of the images' embeddings (ids default to 0..n-1) that
        records this model's fingerprint; `keys` (e.g. the paths) are saved with it."""
        emb = self.encode_images(images, batch_size=batch_size, progress=progress)
        index = Index(self.embed_dim, dtype)
        index.add(emb, ids=None if ids is None else np.asarray(ids, dtype=np.int64), keys=keys)
        index.fingerprint = self.fingerprint
        return index

    def search(
        self,
        index: Index,
        *,
        texts: Sequence[str] | str | None = None,
        images: Iterable[ImageInput] | ImageInput | None = None,
        k: int = 5,
        allow_model_mismatch: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Text->image (texts=) or image->image (images=) search of `index`.

        Args:
            allow_model_mismatch: search an index whose recorded fingerprint names
                another model (normally a ModelMismatchError).

        Returns:
            (scores float32 (nq, k), ids int64 (nq, k)), best first; cosine scores.

        Raises:
            ModelMismatchError: the index was built by another model.
        """
        if (texts is None) == (images is None):
            raise InputError("search needs exactly one of texts= or images=")
        if index.dim != self.embed_dim:
            raise InputError(
                f"the index holds {index.dim}-d vectors but this model makes {self.embed_dim}-d "
                "embeddings; build the index with this model"
            )
        check_same_model(
            index.fingerprint,
            self.fingerprint,
            what="the index",
            allow_mismatch=allow_model_mismatch,
        )
        if texts is not None:
            q = self.encode_texts(texts)
        elif images is not None:
            q = self.encode_images(images)
        return index.search(q, k)

    def batched(
        self,
        *,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
        max_queue: int = 1024,
        timeout_ms: float | None = None,
        **options: Any,
    ) -> Batcher:
        """A micro-batching front over this model for many concurrent small callers
        (see :class:`cliprt.runtime.batching.Batcher` for every option).

        Example:
            >>> with model.batched(max_batch=32, max_wait_ms=2) as b:
            ...     emb = b.embed_texts(["a red circle"])
        """
        from cliprt.runtime.batching import Batcher

        return Batcher(
            self,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            max_queue=max_queue,
            timeout_ms=timeout_ms,
            **options,
        )

    def warmup(self, batch_sizes: Iterable[int] = (1,)) -> None:
        """Runs both towers once per batch size so that first calls are not slow
        (allocations, CUDA kernel selection)."""
        self._check_open()
        pre = self.manifest.preprocessing
        for b in batch_sizes:
            b = _check_batch_size(b)
            # The shape encode_images feeds: the crop, not manifest.image_size.
            self.vision.run(np.zeros((b, 3, pre.crop_height, pre.crop_width), dtype=np.float32))
            lengths = {8, self.manifest.context_length}
            if self.manifest.text_padding == "max_length":
                lengths = {self.manifest.context_length}
            for length in sorted(lengths):
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
    path = checked_path(folder, variant)
    for data_file in variant.data_files:  # external data of towers over the threshold
        checked_path(folder, data_file)
    _refuse_external_data(path, declared=[d.file for d in variant.data_files])
    if choice.backend == OPENVINO:
        return OpenVinoTowerSession(
            path,
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
    session = TowerSession(
        path,
        name=tower,
        input_name=variant.input_name,
        output_name=variant.output_name,
        device=dev,
        options=opts,
        cuda=cuda,
        cuda_graph_batch=cuda.cuda_graph_batch if tower == "vision" else None,
        out_dim=manifest.embed_dim,
    )
    _check_tower_shapes(session, manifest, tower, path)
    # The parsed model freed by session creation stays in glibc's heap otherwise (RSS).
    release_free_heap()
    return session


def _drain(future: Future[Any]) -> None:
    """Waits for a load step whose result is no longer wanted (another step failed):
    its own error, if any, is dropped for the one already propagating."""
    with contextlib.suppress(Exception):
        future.result()


def _refuse_external_data(path: Path, declared: Iterable[str] = ()) -> None:
    """Refuses an .onnx that makes onnxruntime read external-data files the manifest
    does not list (and so does not hash). `declared`: the locations the manifest lists
    and verifies (none in format_version 1).

    Raises:
        ModelFolderError: an undeclared external-data reference, or an unparsable file.
    """
    try:
        locations = external_data_locations(path)
    except (MalformedOnnxError, OSError) as exc:
        raise ModelFolderError(
            f"{path} is not a readable ONNX model ({exc}); re-export the model"
        ) from exc
    allowed = set(declared)
    undeclared = [loc for loc in locations if loc not in allowed]
    if undeclared:
        raise ModelFolderError(
            f"{path} references external data {undeclared[:5]} that {MANIFEST_NAME} does not "
            "list with a sha256, so cliprt cannot check what onnxruntime would read; "
            "re-export the model"
        )


def _check_tower_shapes(session: TowerSession, manifest: Manifest, tower: str, path: Path) -> None:
    """The graph's static dims must agree with the manifest (embed_dim, crop size), so
    that a mismatch fails the load, not the first encode.

    Raises:
        ModelFolderError: a static dim differs from the manifest's value.
    """
    sess = session.session
    out = next(o for o in sess.get_outputs() if o.name == session.output_name)
    expected: list[tuple[str, object, int]] = [
        ("output width", (out.shape or [None])[-1], manifest.embed_dim)
    ]
    if tower == "vision":
        inp = next(i for i in sess.get_inputs() if i.name == session.input_name)
        shape = list(inp.shape or [])
        pre = manifest.preprocessing
        if len(shape) == 4:
            expected += [
                ("input channels", shape[1], 3),
                ("input height", shape[2], pre.crop_height),
                ("input width", shape[3], pre.crop_width),
            ]
    for what, got, want in expected:
        if isinstance(got, int) and got != want:
            raise ModelFolderError(
                f"{path}: the {tower} tower's {what} is {got} but {MANIFEST_NAME} implies "
                f"{want}; the manifest does not belong to this model: re-export it"
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
        spinning: let onnxruntime's idle threads spin during a run, never between
            runs (lower latency; turn off on a box shared with other work).
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
    warmup_batches = _check_load_args(
        precision,
        threads,
        session_options,
        spinning,
        exif_transpose,
        max_image_pixels,
        decode_workers,
        warmup_batches,
        cuda,
    )
    dev = resolve_device(device)
    cuda = cuda or CudaOptions()

    def tokenizer() -> ClipTokenizer:
        tok = ClipTokenizer(
            checked_path(folder, manifest.tokenizer),
            context_length=manifest.context_length,
            pad_id=manifest.pad_id,
            padding=manifest.text_padding,
            padding_side=manifest.padding_side,
        )
        _check_token_ids(tok, manifest, folder)
        return tok

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

    # Cold start: onnxruntime releases the GIL while it creates a session, so a second
    # thread reads tokenizer.json (0.1 s of CPU for CLIP's) meanwhile; it is joined
    # before load() returns, so a broken tokenizer still fails the load. The two
    # sessions are built one after the other on purpose: building the text session
    # beside the vision one took another 0.15 s off the wall time on 2 cores but
    # overlapped their creation peaks, +25 to +75 MiB of peak RSS
    # (benchmarks/results/edge_footprint.md).
    with ThreadPoolExecutor(1, thread_name_prefix="cliprt-load") as pool:
        tok_future = pool.submit(tokenizer)
        try:
            try:
                choice, towers = sessions(dev)
            except ProviderError as exc:
                # "auto" may find the CUDA EP installed on a machine without a usable GPU;
                # an explicit "cuda" never falls back.
                if (
                    device is not None and str(device).strip().lower() != "auto"
                ) or dev.kind != "cuda":
                    raise
                logger.warning(
                    "device='auto': CUDA is installed but unusable (%s); using the CPU", exc
                )
                dev = Device("cpu")
                choice, towers = sessions(dev)
        except BaseException:
            _drain(tok_future)
            raise
        tok = tok_future.result()
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


def _check_load_args(
    precision: object,
    threads: object,
    session_options: object,
    spinning: object,
    exif_transpose: object,
    max_image_pixels: object,
    decode_workers: object,
    warmup_batches: object,
    cuda: object,
) -> list[int]:
    """Checks load()'s arguments' types and ranges (device: resolve_device); returns the
    warmup batch sizes as a list.

    Raises:
        InputError: the first bad argument, with its value.
    """
    if not isinstance(precision, str):
        raise InputError(
            f"precision must be a string ('fp32', 'fp16', 'int8' or 'auto'), got {precision!r}"
        )
    check_threads(threads, none="the CPUs available, at most 16")
    check_threads(decode_workers, name="decode_workers", none="min(4, CPUs)")
    for name, flag in (("spinning", spinning), ("exif_transpose", exif_transpose)):
        if not isinstance(flag, bool):
            raise InputError(f"{name} must be True or False, got {flag!r}")
    if session_options is not None and not isinstance(session_options, ort.SessionOptions):
        raise InputError(
            f"session_options must be an onnxruntime.SessionOptions or None, got "
            f"{type(session_options).__name__}"
        )
    if cuda is not None and not isinstance(cuda, CudaOptions):
        raise InputError(
            f"cuda must be a cliprt.runtime.CudaOptions or None, got {type(cuda).__name__}"
        )
    if (
        isinstance(max_image_pixels, bool)
        or not isinstance(max_image_pixels, int)
        or max_image_pixels < 1
    ):
        raise InputError(f"max_image_pixels must be a positive int, got {max_image_pixels!r}")
    pil_limit = pil_pixel_limit()
    if pil_limit is not None and max_image_pixels > pil_limit:
        raise InputError(
            f"max_image_pixels={max_image_pixels} is above Pillow's own guard "
            f"PIL.Image.MAX_IMAGE_PIXELS={pil_limit}, which cliprt does not change and which "
            "would refuse those images anyway; to decode larger images set "
            f"PIL.Image.MAX_IMAGE_PIXELS = {max_image_pixels} (process-wide) before cliprt.load()"
        )
    if isinstance(warmup_batches, (str, bytes)):
        raise InputError(f"warmup_batches must be batch sizes, e.g. (1, 8), got {warmup_batches!r}")
    try:
        sizes = list(warmup_batches)  # type: ignore[call-overload]
    except TypeError:
        raise InputError(
            f"warmup_batches must be an iterable of batch sizes, e.g. (1, 8), got {warmup_batches!r}"
        ) from None
    return [_check_batch_size(b) for b in sizes]


def _check_token_ids(tok: ClipTokenizer, manifest: Manifest, folder: Path) -> None:
    """BOS, EOS and pad ids must be tokens of the tokenizer: an id beyond its vocabulary
    would fail inside the text tower at the first encode.

    Raises:
        ModelFolderError: an id outside the vocabulary.
    """
    size = tok.vocab_size
    for name in ("bos_id", "eos_id", "pad_id"):
        value = getattr(manifest, name)
        if value >= size:
            raise ModelFolderError(
                f"{folder / MANIFEST_NAME}: {name} {value} is outside the tokenizer's "
                f"vocabulary of {size} tokens; re-export the model"
            )
