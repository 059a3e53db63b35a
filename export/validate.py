"""Validation of every exported variant against the PyTorch tower, and the gates that
decide whether a variant ships. Figures are measured on L2-normalised embeddings over
varied probe images and texts, and recorded in the manifest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cliprt.errors import ExportError, ParityError
from cliprt.manifest import Parity


@dataclass(frozen=True)
class Gate:
    """The bounds a variant must meet; None means not checked."""

    max_abs_diff: float | None = None
    min_cosine: float | None = None

    def failures(self, parity: Parity) -> list[str]:
        """What this parity breaks, one phrase each; empty when it passes."""
        out = []
        if self.max_abs_diff is not None and not parity.max_abs_diff <= self.max_abs_diff:
            out.append(f"max abs diff {parity.max_abs_diff:.3g} > {self.max_abs_diff:g}")
        if self.min_cosine is not None and not parity.min_cosine >= self.min_cosine:
            out.append(f"min cosine {parity.min_cosine:.6f} < {self.min_cosine:g}")
        return out


DEFAULT_GATES: dict[str, Gate] = {
    "fp32": Gate(max_abs_diff=1e-4),
    "fp16": Gate(min_cosine=0.999),
    "int8": Gate(min_cosine=0.99),
}


def resolve_gates(overrides: Mapping[str, Any] | None) -> tuple[dict[str, Gate], dict[str, Any]]:
    """Merges user overrides into DEFAULT_GATES.

    Args:
        overrides: precision -> Gate, or "precision.metric" -> number, e.g.
            {"int8.min_cosine": 0.98} or {"fp32": Gate(max_abs_diff=1e-3)}.

    Returns:
        (the gates, the overrides as recorded in the manifest).

    Raises:
        ExportError: an unknown precision or metric.
    """
    gates = dict(DEFAULT_GATES)
    recorded: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        precision, _, metric = key.partition(".")
        if precision not in gates:
            raise ExportError(
                f"gate {key!r}: unknown precision {precision!r}; known: {', '.join(gates)}"
            )
        if isinstance(value, Gate):
            gates[precision] = value
            recorded[precision] = {
                "max_abs_diff": value.max_abs_diff,
                "min_cosine": value.min_cosine,
            }
            continue
        if metric not in ("max_abs_diff", "min_cosine"):
            raise ExportError(
                f"gate {key!r}: unknown metric {metric!r}; use PRECISION.max_abs_diff or "
                "PRECISION.min_cosine, e.g. int8.min_cosine=0.98"
            )
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise ExportError(f"gate {key!r}: {value!r} is not a number") from exc
        g = gates[precision]
        gates[precision] = Gate(
            max_abs_diff=number if metric == "max_abs_diff" else g.max_abs_diff,
            min_cosine=number if metric == "min_cosine" else g.min_cosine,
        )
        recorded[key] = number
    return gates, recorded


def probe_images(image_size: int) -> list[Any]:
    """Varied PIL images: noise, black, white, gradients, drawings, odd sizes."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    s = image_size
    ramp = np.linspace(0, 255, s, dtype=np.float64)
    images = [
        Image.fromarray(rng.integers(0, 256, (s, s, 3), dtype=np.uint8)),
        Image.new("RGB", (s, s), (0, 0, 0)),
        Image.new("RGB", (s, s), (255, 255, 255)),
        Image.fromarray(np.stack([np.tile(ramp, (s, 1))] * 3, -1).astype(np.uint8)),
        Image.fromarray(
            np.stack(
                [np.tile(ramp[:, None], (1, s)), np.zeros((s, s)), np.tile(ramp, (s, 1))], -1
            ).astype(np.uint8)
        ),
    ]
    for i, (w, h) in enumerate([(s + 76, s), (s, s * 2), (s // 2 + 5, s // 3 + 7)]):
        img = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(img)
        for _ in range(6 + i):
            x0, y0 = int(rng.integers(0, w - 1)), int(rng.integers(0, h - 1))
            x1, y1 = min(w, x0 + int(rng.integers(1, w))), min(h, y0 + int(rng.integers(1, h)))
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            if rng.random() < 0.5:
                draw.ellipse([x0, y0, x1, y1], fill=color)
            else:
                draw.rectangle([x0, y0, x1, y1], fill=color, outline=(0, 0, 0))
        images.append(img)
    return images


PROBE_TEXTS: tuple[str, ...] = (
    "",
    "a",
    "cat",
    "a photo of a cat",
    "A PHOTO OF A DOG!!!",
    "an oil painting of a lighthouse at dusk, waves crashing",
    "café crème, 東京, naïve façade, emoji 🙂",
    "1 2 3 4 5 6 7 8 9 10",
    " ".join(["a very long caption that keeps going"] * 20),  # > 77 tokens: truncated
)


@dataclass(frozen=True)
class Probes:
    """Inputs and PyTorch reference embeddings (L2-normalised) for both towers."""

    pixel_values: Any  # float32 [n, 3, H, W]
    image_ref: Any  # float32 [n, D]
    input_ids: Any  # int64 [m, s], right-padded with pad_id
    text_ref: Any  # float32 [m, D]


def l2_normalize(x: Any) -> Any:
    """Unit rows in float64, for parity figures (the runtime's one normalisation)."""
    from cliprt.runtime.vectors import l2_normalize as unit_rows

    return unit_rows(x, dtype="float64")


def build_probes(ckpt: Any) -> Probes:
    """Preprocesses the probe images and tokenizes the probe texts with the family's own
    pipeline, and embeds them with its PyTorch model (text with its attention_mask where
    the family uses one: the ONNX tower gets ids only)."""
    pixel_values = ckpt.pixel_values(probe_images(int(ckpt.image_size)))
    input_ids, mask = ckpt.tokenize(list(PROBE_TEXTS))
    return Probes(
        pixel_values=pixel_values,
        image_ref=l2_normalize(ckpt.image_embeds(pixel_values)),
        input_ids=input_ids,
        text_ref=l2_normalize(ckpt.text_embeds(input_ids, mask)),
    )


def check_tokenizer(ckpt: Any, tokenizer_json: str | Path) -> dict[str, Any]:
    """Checks that the runtime's tokenizer (tokenizers on `tokenizer_json`, with the
    manifest's padding) gives the family tokenizer's ids on the probe texts.

    Raises:
        ExportError: any difference, with the first differing text.
    """
    import numpy as np

    from cliprt.runtime.tokenizer import ClipTokenizer

    texts = [t for t in PROBE_TEXTS if t.strip()]  # the runtime refuses blank prompts
    ref, mask = ckpt.tokenize(texts)
    runtime = ClipTokenizer(
        tokenizer_json,
        context_length=ckpt.context_length,
        pad_id=ckpt.pad_id,
        padding=ckpt.text_padding,
        padding_side=ckpt.padding_side,
    )
    got = runtime(texts)
    # Where the family pads to the longest prompt its pad ids may differ from ours
    # (they are never read: causal mask + EOS pooling); compare the real tokens.
    same = got.shape == ref.shape and bool(
        np.array_equal(np.where(mask == 1, ref, -1), np.where(mask == 1, got, -1))
    )
    if not same:
        bad = next(
            (
                t
                for i, t in enumerate(texts)
                if got.shape != ref.shape
                or not np.array_equal(got[i][mask[i] == 1], ref[i][mask[i] == 1])
            ),
            texts[0],
        )
        raise ExportError(
            f"the runtime tokenizer disagrees with the {ckpt.family} tokenizer (first on "
            f"{bad[:60]!r}); this checkpoint's tokenizer cannot be reproduced by tokenizers"
        )
    return {"texts": len(texts), "equal": True, "context_length": ckpt.context_length}


def check_preprocessing(ckpt: Any, *, limit: float = 1e-6) -> dict[str, Any]:
    """Checks the runtime's torch-free preprocessing against the family's processor on
    the probe images (odd aspect ratios included).

    Raises:
        ExportError: a max abs difference of pixel values above `limit`.
    """
    import numpy as np

    from cliprt.runtime.preprocess import preprocess

    images = probe_images(int(ckpt.image_size))
    ref = ckpt.pixel_values(images)
    got = np.stack([preprocess(im, ckpt.preprocessing) for im in images])
    if got.shape != ref.shape:
        raise ExportError(
            f"the runtime preprocesses to {got.shape}, the {ckpt.family} processor to {ref.shape}"
        )
    diff = float(np.abs(got - ref).max())
    if not diff <= limit:
        raise ExportError(
            f"the runtime's preprocessing differs from the {ckpt.family} processor by "
            f"{diff:.3g} (> {limit:g}) in pixel values; this processor config is not "
            "reproduced by cliprt"
        )
    return {"images": len(images), "max_abs_diff": diff}


def cpu_session(path: str | Path, *, lean: bool | None = None) -> Any:
    """An onnxruntime CPU session over a variant, loaded by path.

    Args:
        path: the .onnx file (its external data, if any, beside it).
        lean: build the session for memory rather than speed; None (default) means
            "when the model keeps its weights in external data", i.e. the large towers.
            A normal session (the runtime's ORT_ENABLE_ALL, pre-packed weights, arena)
            holds a 2.5 GB tower about twice; a lean one about once: no pre-packed
            copies of the MatMul weights, no arena keeping every activation's peak, and
            no graph optimizations (the graph was already fused by the export, and
            onnxruntime's level-2 rewrites, e.g. folding fp16 weights' Casts into fp32
            constants, would copy weights). onnxruntime still inserts the Casts a
            CPU kernel without fp16 needs, so fp16 variants run too.
    """
    import onnxruntime as ort

    if lean is None:
        from cliprt.runtime.onnx_external import external_data_locations

        lean = bool(external_data_locations(path))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if lean:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.enable_cpu_mem_arena = False
        opts.enable_mem_pattern = False
        opts.add_session_config_entry("session.disable_prepacking", "1")
    else:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # By path, never by bytes: onnxruntime then reads (or maps) the external data from
    # the file instead of a second in-memory copy of the model.
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def measure(path: str | Path, kind: str, probes: Probes) -> Parity:
    """Runs one variant on the probes (CPU EP) and compares with the PyTorch tower.

    Non-finite outputs give NaN figures, which fail every gate.
    """
    import numpy as np

    session = cpu_session(path)
    feed_name = session.get_inputs()[0].name
    x = probes.pixel_values if kind == "vision" else probes.input_ids
    ref = probes.image_ref if kind == "vision" else probes.text_ref
    (out,) = session.run(None, {feed_name: x})
    if not np.isfinite(out).all():
        nan = float("nan")
        return Parity(max_abs_diff=nan, min_cosine=nan, mean_cosine=nan, n_inputs=len(x))
    got = l2_normalize(out)
    cos = (got * ref).sum(-1)
    return Parity(
        max_abs_diff=float(np.abs(got - ref).max()),
        min_cosine=float(cos.min()),
        mean_cosine=float(cos.mean()),
        n_inputs=len(x),
    )


def batch_drift(path: str | Path, kind: str, probes: Probes, *, mates: int = 7) -> float:
    """Max abs diff of an item's raw (unnormalised) embedding run alone vs in a batch
    with `mates` other probe inputs, over the first 4 probes; 0.0 when the variant's
    result does not depend on its batch mates (what the micro-batching server needs)."""
    import numpy as np

    session = cpu_session(path)
    feed_name = session.get_inputs()[0].name
    x = probes.pixel_values if kind == "vision" else probes.input_ids
    n = len(x)
    drift = 0.0
    for item in range(min(4, n)):
        (alone,) = session.run(None, {feed_name: x[item : item + 1]})
        others = [j for j in range(n) if j != item][:mates]
        batch = np.concatenate(
            [x[others[: len(others) // 2]], x[item : item + 1], x[others[len(others) // 2 :]]]
        )
        (out,) = session.run(None, {feed_name: batch})
        drift = max(drift, float(np.abs(out[len(others) // 2] - alone[0]).max()))
    return drift


def check_gate(precision: str, parities: Mapping[str, Parity], gate: Gate) -> None:
    """Raises ParityError naming each tower that fails `gate`, with its figures."""
    problems = [
        f"{kind} {precision}: {', '.join(fails)} (over {parity.n_inputs} probe inputs)"
        for kind, parity in parities.items()
        if (fails := gate.failures(parity))
    ]
    if problems:
        raise ParityError(
            "; ".join(problems)
            + ". The variant disagrees with the PyTorch tower; drop this precision "
            "(--precision), or loosen the gate knowingly (--gate PRECISION.METRIC=VALUE)"
        )
