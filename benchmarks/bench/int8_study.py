"""The int8 formulation study behind export/int8.py's default (issue #11).

Compares ways of making the int8 towers on one exported checkpoint, for speed (image
b1/b8, text b8/b32, p50 ms, candidates interleaved), parity (min cosine against the
PyTorch fp32 tower) and batch drift (max abs diff of an item's raw embedding alone vs in
a batch of 8 random mates). Writes a Markdown table and a JSON file.

    python -m cliprt.bench.int8_study prepare --work /tmp/int8-study --arch ViT-B-32
    python -m cliprt.bench.int8_study run --work /tmp/int8-study --threads 2 \\
        --out benchmarks/results/int8-formulations
    python -m cliprt.bench.int8_study time --work /tmp/int8-study \\
        --candidates fp32,qop-u8s8-raw,frozen-raw-patch --repeats 15   # wall + CPU ms

`prepare` builds random:ARCH (seed 0), exports both towers to ONNX before fusion
(raw) and after (fused, the fp32 variant), and records evaluation inputs (natural-ish
photos, shapes renders, probe images; CLIP-BPE captions) with the PyTorch embeddings.
Calibration inputs are drawn separately from the evaluation ones. Needs the export extra.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from cliprt.bench.env import cpu_description, load_average
from cliprt.bench.timing import measure_interleaved
from cliprt.runtime.vectors import l2_normalize

_CALIB_IMAGES = 32
_CALIB_TEXTS = 64


def _natural_images(start: int, n: int) -> list[Any]:
    from cliprt.bench.inputs import _SIZES, _photo

    return [_photo(start + i, _SIZES[i % len(_SIZES)]) for i in range(n)]


def _shapes_images(seed: int, n: int) -> tuple[list[Any], list[str]]:
    from cliprt import shapes

    images, specs = shapes.generate(n, seed=seed, image_size=224)
    return images, [s.caption(i) for i, s in enumerate(specs)]


def _texts(seed: int, n: int) -> list[str]:
    from cliprt.bench.inputs import _WORDS

    rng = np.random.default_rng(seed)
    _, captions = _shapes_images(seed, n // 2)
    out = list(captions)
    while len(out) < n:
        k = int(rng.integers(2, 14))
        out.append(" ".join(rng.choice(_WORDS, size=k)))
    return out


def eval_and_calib_inputs() -> dict[str, Any]:
    """PIL images and texts: evaluation and calibration sets, disjoint."""
    from cliprt.export.validate import PROBE_TEXTS, probe_images

    sh_eval, cap_eval = _shapes_images(1, 8)
    sh_cal, _ = _shapes_images(2, 8)
    return {
        "eval_images": probe_images(224) + _natural_images(0, 8) + sh_eval,
        "calib_images": _natural_images(500, _CALIB_IMAGES - 8) + sh_cal,
        "eval_texts": [t for t in PROBE_TEXTS if t] + cap_eval + _texts(7, 8),
        "calib_texts": _texts(11, _CALIB_TEXTS),
    }


def prepare(work: Path, arch: str) -> None:
    """Builds the checkpoint, raw and fused ONNX towers and the study's inputs."""
    import torch
    from transformers import CLIPImageProcessor, CLIPTokenizerFast

    from cliprt.export.onnx_graph import export_tower
    from cliprt.export.optimize import optimize_tower
    from cliprt.export.random_checkpoints import build_random_checkpoint
    from cliprt.export.towers import load_towers

    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / "checkpoint"
    if not (ckpt / "config.json").is_file():
        build_random_checkpoint(arch, ckpt, seed=0)
    tok = CLIPTokenizerFast.from_pretrained(str(ckpt))
    proc = CLIPImageProcessor.from_pretrained(str(ckpt))
    towers = load_towers(ckpt, eos_id=int(tok.eos_token_id))
    cfg = towers.model.config
    for kind, tower, c in (
        ("vision", towers.vision, cfg.vision_config),
        ("text", towers.text, cfg.text_config),
    ):
        raw = work / f"{kind}.raw.onnx"
        if not raw.is_file():
            export_tower(tower, kind, raw, opset=17)
        fused = work / f"{kind}.fp32.onnx"
        if not fused.is_file():
            optimize_tower(
                raw,
                fused,
                num_heads=c.num_attention_heads,
                hidden_size=c.hidden_size,
                num_layers=c.num_hidden_layers,
                kind=kind,
            )
    (work / "arch.json").write_text(
        json.dumps(
            {
                "vision": {
                    "heads": cfg.vision_config.num_attention_heads,
                    "hidden": cfg.vision_config.hidden_size,
                },
                "text": {
                    "heads": cfg.text_config.num_attention_heads,
                    "hidden": cfg.text_config.hidden_size,
                },
            }
        )
    )
    data = eval_and_calib_inputs()
    arrays: dict[str, np.ndarray] = {}
    for split in ("eval", "calib"):
        arrays[f"{split}_pixels"] = proc(images=data[f"{split}_images"], return_tensors="np")[
            "pixel_values"
        ].astype(np.float32)
        enc = tok(
            data[f"{split}_texts"],
            padding=True,
            truncation=True,
            max_length=int(cfg.text_config.max_position_embeddings),
            return_tensors="np",
        )
        arrays[f"{split}_ids"] = enc["input_ids"].astype(np.int64)
        arrays[f"{split}_mask"] = enc["attention_mask"].astype(np.int64)
    with torch.inference_mode():
        arrays["eval_image_ref"] = (
            towers.model.get_image_features(pixel_values=torch.from_numpy(arrays["eval_pixels"]))
            .float()
            .numpy()
        )
        arrays["eval_text_ref"] = (
            towers.model.get_text_features(
                input_ids=torch.from_numpy(arrays["eval_ids"]),
                attention_mask=torch.from_numpy(arrays["eval_mask"]),
            )
            .float()
            .numpy()
        )
    np.savez(work / "inputs.npz", **arrays)  # type: ignore[arg-type]
    (work / "texts.json").write_text(
        json.dumps({"eval": data["eval_texts"], "calib": data["calib_texts"]}, indent=1)
    )
    print(f"prepared {work}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


# ---------------------------------------------------------------- candidates


class _Reader:
    """A CalibrationDataReader over one input in batches of 8."""

    def __init__(self, name: str, data: np.ndarray) -> None:
        self.name = name
        self.batches = [data[i : i + 8] for i in range(0, len(data), 8)]

    def get_next(self) -> dict[str, np.ndarray] | None:
        return {self.name: self.batches.pop(0)} if self.batches else None

    def rewind(self) -> None:  # pragma: no cover - required by some ORT versions
        pass


def _quiet() -> Any:
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    logging.getLogger("onnxruntime").setLevel(logging.ERROR)


def _dynamic(
    src: Path,
    dst: Path,
    op_types: list[str],
    exclude: list[str] | None = None,
    *,
    per_channel: bool = True,
    weights: str = "s8",
) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        per_channel=per_channel,
        reduce_range=False,
        weight_type=QuantType.QInt8 if weights == "s8" else QuantType.QUInt8,
        op_types_to_quantize=op_types,
        nodes_to_exclude=exclude or [],
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def weight_matmuls(path: Path) -> tuple[list[str], list[str]]:
    """(MatMul nodes whose B is a weight, MatMul nodes of two activations)."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in g.initializer}
    mm = [n for n in g.node if n.op_type == "MatMul"]
    return [n.name for n in mm if n.input[1] in inits], [
        n.name for n in mm if n.input[1] not in inits
    ]


def _static(
    src: Path,
    dst: Path,
    kind: str,
    calib: np.ndarray,
    activation: str,
    op_types: list[str],
    fmt: str = "qdq",
) -> None:
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    name = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    quantize_static(
        str(src),
        str(dst),
        _Reader(name, calib),
        quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
        op_types_to_quantize=op_types,
        # Attention scores (activation x activation) keep fp32: a static scale for them
        # costs parity and they are a small share of the FLOPs.
        nodes_to_exclude=weight_matmuls(src)[1],
        per_channel=True,
        reduce_range=False,
        activation_type=QuantType.QInt8 if activation == "s8" else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={
            "DefaultTensorType": onnx.TensorProto.FLOAT,
            "ActivationSymmetric": activation == "s8",
            "WeightSymmetric": True,
        },
    )


def _nbits(src: Path, dst: Path, bits: int, block: int, accuracy_level: int) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    cfg = DefaultWeightOnlyQuantConfig(
        block_size=block,
        is_symmetric=True,
        accuracy_level=accuracy_level,
        bits=bits,
        op_types_to_quantize=("MatMul",),
    )
    q = MatMulNBitsQuantizer(onnx.load(str(src)), algo_config=cfg)
    q.process()
    q.model.save_model_to_file(str(dst), use_external_data_format=False)


def _fuse(src: Path, dst: Path, kind: str, arch: dict[str, Any]) -> None:
    # The transformer optimizer over an already quantized graph: LayerNorm / QuickGelu
    # fusions still apply; attention stays unfused (its MatMuls are no longer MatMul).
    from onnxruntime.transformers.optimizer import optimize_model

    a = arch[kind]
    m = optimize_model(
        str(src), model_type="clip", num_heads=a["heads"], hidden_size=a["hidden"], opt_level=0
    )
    m.save_model_to_file(str(dst))


CANDIDATES: dict[str, str] = {
    "fp32": "fused fp32 graph (the fp32 variant), for speed and drift reference",
    "dyn-fused": "dynamic int8 after fusion, MatMul only, per-channel S8 weights (cliprt <= 0.1)",
    "dyn-fused-attn": "dynamic int8 after fusion, MatMul + fused Attention (QAttention)",
    "dyn-raw": "dynamic int8 before fusion (every MatMul incl. Q/K/V), ORT runtime fusions",
    "qdq-s8s8": "static QDQ after fusion, MatMul, S8 activations / S8 per-channel weights",
    "qdq-u8s8": "static QDQ after fusion, MatMul, U8 activations / S8 per-channel weights",
    "qdq-s8s8-raw": "static QDQ before fusion (every MatMul incl. Q/K/V), S8S8",
    "qop-u8s8": "static QOperator (QLinearMatMul) after fusion, U8 activations / S8 weights",
    "qop-s8s8-raw": "static QOperator before fusion (every weight MatMul incl. Q/K/V), S8S8",
    "qop-u8s8-raw": "static QOperator before fusion (every weight MatMul incl. Q/K/V), U8S8",
    "frozen-raw": "dynamic int8 before fusion (weight MatMuls) with its activation scales "
    "frozen from calibration (QuantizeLinear instead of DynamicQuantizeLinear)",
    "frozen-raw-patch": "frozen-raw plus the patch-embedding Conv as an int8 MatMul "
    "(export/int8.py's default: Int8Options())",
    "frozen-raw-patch-pt": "frozen-raw-patch with one weight scale per tensor",
    "frozen-raw-patch-u8u8": "frozen-raw-patch with U8 (asymmetric) weights",
    "frozen-fused-attn": "dynamic int8 after fusion, MatMul + fused Attention (QAttention), "
    "activation scales frozen from calibration",
    "frozen-fused-attn-patch": "frozen-fused-attn plus the patch-embedding Conv as an int8 MatMul",
    "nbits8-fused": "MatMulNBits 8-bit weights (block 32), int8 compute per row block "
    "(accuracy_level 4), after fusion",
    "nbits8-raw": "MatMulNBits 8-bit (block 32, accuracy_level 4) before fusion, then "
    "LayerNorm/Gelu fusions",
}


def make_candidate(work: Path, name: str, kind: str) -> Path:
    """Builds (once) candidate `name` of tower `kind` and returns its path."""
    fused, raw = work / f"{kind}.fp32.onnx", work / f"{kind}.raw.onnx"
    if name == "fp32":
        return fused
    out = work / "candidates" / f"{name}.{kind}.onnx"
    if out.is_file():
        return out
    out.parent.mkdir(exist_ok=True)
    _quiet()
    from cliprt.export.int8 import (
        Int8Options,
        freeze_activation_scales,
        patch_conv_to_matmul,
        quantize_int8,
    )

    data = np.load(work / "inputs.npz")
    calib = data["calib_pixels"] if kind == "vision" else data["calib_ids"]
    arch = json.loads((work / "arch.json").read_text())
    tmp = out.with_suffix(".tmp.onnx")
    if name == "dyn-fused":
        _dynamic(fused, tmp, ["MatMul"])
    elif name == "dyn-fused-attn":
        _dynamic(fused, tmp, ["MatMul", "Attention"])
    elif name == "dyn-raw":
        _dynamic(raw, tmp, ["MatMul"])
    elif name in ("qdq-s8s8", "qdq-u8s8"):
        _static(fused, tmp, kind, calib, name[4:6], ["MatMul"])
    elif name == "qdq-s8s8-raw":
        _static(raw, tmp, kind, calib, "s8", ["MatMul"])
    elif name == "qop-u8s8":
        _static(fused, tmp, kind, calib, "u8", ["MatMul"], fmt="qop")
    elif name in ("qop-s8s8-raw", "qop-u8s8-raw"):
        _static(raw, tmp, kind, calib, name[4:6], ["MatMul"], fmt="qop")
    elif name == "frozen-raw":
        pre = out.with_suffix(".pre.onnx")
        _dynamic(raw, pre, ["MatMul"], exclude=weight_matmuls(raw)[1])
        freeze_activation_scales(pre, raw, tmp, calib)
        pre.unlink()
    elif name == "frozen-raw-patch":
        quantize_int8(fused, tmp, Int8Options(reduce_range=False), raw=raw, calibration=calib)
    elif name in ("frozen-raw-patch-pt", "frozen-raw-patch-u8u8"):
        pre, base = out.with_suffix(".pre.onnx"), out.with_suffix(".patch.onnx")
        patch_conv_to_matmul(raw, base)
        _dynamic(
            base,
            pre,
            ["MatMul"],
            exclude=weight_matmuls(base)[1],
            per_channel=not name.endswith("-pt"),
            weights="u8" if name.endswith("u8u8") else "s8",
        )
        freeze_activation_scales(pre, base, tmp, calib)
        pre.unlink()
        base.unlink()
    elif name in ("frozen-fused-attn", "frozen-fused-attn-patch"):
        pre, base = out.with_suffix(".pre.onnx"), fused
        if name.endswith("-patch"):
            base = out.with_suffix(".patch.onnx")
            patch_conv_to_matmul(fused, base)
        _dynamic(base, pre, ["MatMul", "Attention"], exclude=weight_matmuls(base)[1])
        freeze_activation_scales(pre, base, tmp, calib)
        pre.unlink()
        if base != fused:
            base.unlink()
    elif name == "nbits8-fused":
        _nbits(fused, tmp, 8, 32, 4)
    elif name == "nbits8-raw":
        pre = out.with_suffix(".pre.onnx")
        _nbits(raw, pre, 8, 32, 4)
        _fuse(pre, tmp, kind, arch)
        pre.unlink()
    else:
        raise ValueError(f"unknown candidate {name!r}; known: {', '.join(CANDIDATES)}")
    tmp.replace(out)
    return out


# ---------------------------------------------------------------- measurement


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    from cliprt.runtime.cpu import cpu_features
    from cliprt.runtime.cpu_choice import int8_session
    from cliprt.runtime.providers import session_options

    so = session_options(threads=threads, spinning=False)
    for k, v in int8_session(cpu_features(), {"reduce_range": False}).config.items():
        so.add_session_config_entry(k, v)
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def _run(sess: Any, x: np.ndarray) -> np.ndarray:
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def parity_and_drift(sess: Any, kind: str, data: Any, seed: int = 0) -> dict[str, float]:
    """Min/mean cosine vs PyTorch over the eval set, and batch drift: max abs diff of an
    item's raw embedding alone vs in a batch of 8 with random mates (4 items x 2 draws)."""
    x = data["eval_pixels"] if kind == "vision" else data["eval_ids"]
    ref = data["eval_image_ref"] if kind == "vision" else data["eval_text_ref"]
    out = np.concatenate([_run(sess, x[i : i + 8]) for i in range(0, len(x), 8)])
    cos = (l2_normalize(out, dtype=np.float64) * l2_normalize(ref, dtype=np.float64)).sum(-1)
    # Mates: other evaluation inputs (text: the same padded length as the item).
    pool = x
    rng = np.random.default_rng(seed)
    drift = 0.0
    for item in range(4):
        alone = _run(sess, x[item : item + 1])[0]
        for _ in range(2):
            mates = rng.choice([j for j in range(len(pool)) if j != item], size=7, replace=False)
            batch = np.concatenate([x[item : item + 1], pool[mates]])
            pos = int(rng.integers(0, 8))
            batch[[0, pos]] = batch[[pos, 0]]
            drift = max(drift, float(np.abs(_run(sess, batch)[pos] - alone).max()))
    return {
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
        "batch_drift": drift,
        "embed_norm": float(np.linalg.norm(out, axis=-1).mean()),
    }


def timed_inputs(data: Any, seq_len: int = 16) -> dict[tuple[str, int], np.ndarray]:
    rng = np.random.default_rng(3)
    pix = data["calib_pixels"]
    out = {("vision", 1): pix[:1], ("vision", 8): pix[:8]}
    for b in (8, 32):
        ids = rng.integers(400, 40000, size=(b, seq_len)).astype(np.int64)
        ids[:, 0], ids[:, -1] = 49406, 49407
        out[("text", b)] = ids
    return out


def run_study(
    work: Path, names: list[str], *, threads: int, repeats: int, out: Path | None
) -> dict[str, Any]:
    """Builds every candidate, then measures parity, drift and interleaved p50 ms."""

    import onnxruntime as ort

    from cliprt.runtime.cpu import cpu_features

    data = dict(np.load(work / "inputs.npz"))
    results: dict[str, Any] = {n: {"what": CANDIDATES[n]} for n in names}
    sessions: dict[tuple[str, str], Any] = {}
    for name in names:
        for kind in ("vision", "text"):
            t0 = time.perf_counter()
            path = make_candidate(work, name, kind)
            sess = _session(path, threads)
            sessions[(name, kind)] = sess
            r = parity_and_drift(sess, kind, data)
            results[name][kind] = {**r, "bytes": path.stat().st_size}
            print(
                f"{name:14s} {kind:6s} min cos {r['min_cosine']:.5f} drift "
                f"{r['batch_drift']:.2e} ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    inputs = timed_inputs(data)
    for (kind, b), x in inputs.items():
        # Round-robin, one warm-up round: every candidate meets the same spells of load.
        timings = measure_interleaved(
            {n: partial(_run, sessions[(n, kind)], x) for n in names},
            items=len(x),
            repeats=repeats,
            warmup=1,
        )
        for n in names:
            results[n].setdefault("p50_ms", {})[f"{kind} b{b}"] = timings[n].p50_ms
        print(
            f"{kind} b{b}: "
            + ", ".join(f"{n} {results[n]['p50_ms'][f'{kind} b{b}']:.1f}" for n in names),
            flush=True,
        )
    report = {
        "cpu": cpu_description()["model"],
        "cpu_features": cpu_features().summary(),
        "load_average": load_average(),
        "threads": threads,
        "repeats": repeats,
        "onnxruntime": ort.__version__,
        "candidates": results,
    }
    if out is not None:
        write_report(report, out)
    return report


def time_candidates(work: Path, names: list[str], *, threads: int, repeats: int) -> dict:
    """Interleaved p50 of wall and process CPU milliseconds per call (no parity).

    On a shared box the CPU time of a call (all its threads; spinning is off, so a
    waiting thread costs none) moves far less with other jobs' load than wall time."""
    data = dict(np.load(work / "inputs.npz"))
    out: dict[str, dict[str, dict[str, float]]] = {n: {} for n in names}
    print(f"load average {load_average()}", flush=True)
    for (kind, b), x in timed_inputs(data).items():
        sessions = {n: _session(make_candidate(work, n, kind), threads) for n in names}
        for n in names:  # warm-up
            _run(sessions[n], x)
        wall: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(repeats):
            for n in names:
                t0, c0 = time.perf_counter(), time.process_time()
                _run(sessions[n], x)
                wall[n].append((time.perf_counter() - t0) * 1e3)
                cpu[n].append((time.process_time() - c0) * 1e3)
        for n in names:
            out[n][f"{kind} b{b}"] = {
                "wall_ms": float(np.median(wall[n])),
                "cpu_ms": float(np.median(cpu[n])),
            }
        print(
            f"{kind} b{b}: "
            + "; ".join(
                f"{n} wall {out[n][f'{kind} b{b}']['wall_ms']:.1f} cpu "
                f"{out[n][f'{kind} b{b}']['cpu_ms']:.1f}"
                for n in names
            ),
            flush=True,
        )
        del sessions
    print(f"load average {load_average()}", flush=True)
    return out


def write_report(report: dict[str, Any], out: Path) -> None:
    """Writes OUT.json and OUT.md (the comparison table)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    shapes = ["vision b1", "vision b8", "text b8", "text b32"]
    c = report["candidates"]
    base = c.get("fp32", {}).get("p50_ms", {})
    lines = [
        "# int8 formulations for the CPU towers (random:ViT-B-32)",
        "",
        f"Machine: {report['cpu']} ({report['cpu_features']}), {report['threads']} threads, "
        f"onnxruntime {report['onnxruntime']}, load average {report['load_average'][0]:.1f} "
        "(shared box: absolute times are pessimistic; compare within a column, all "
        f"candidates interleaved, p50 of {report['repeats']} calls).",
        "",
        "Parity: min cosine against the PyTorch fp32 tower over 24 evaluation inputs per "
        "tower (probe images, photo-like images, shapes renders; captions and probe "
        "texts). Drift: max abs diff of an item's raw (unnormalised) embedding run alone "
        "vs in a batch of 8 random mates. Speed-up in brackets is over fp32 in the same run.",
        "",
        "| candidate | "
        + " | ".join(f"{s} ms" for s in shapes)
        + " | image min cos | text min cos | image drift | text drift | what |",
        "|---|" + "---|" * (len(shapes) + 5),
    ]
    for name, r in c.items():
        cells = []
        for s in shapes:
            ms = r.get("p50_ms", {}).get(s)
            ratio = f" ({base[s] / ms:.2f}x)" if ms and base.get(s) else ""
            cells.append(f"{ms:.1f}{ratio}" if ms else "-")
        v, t = r.get("vision", {}), r.get("text", {})
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {v.get('min_cosine', float('nan')):.5f} | {t.get('min_cosine', float('nan')):.5f}"
            f" | {v.get('batch_drift', float('nan')):.1e} | {t.get('batch_drift', float('nan')):.1e}"
            f" | {r['what']} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cliprt.bench.int8_study")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--arch", default="ViT-B-32")
    r = sub.add_parser("run")
    r.add_argument("--work", type=Path, required=True)
    r.add_argument("--candidates", default=",".join(CANDIDATES))
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--repeats", type=int, default=10)
    r.add_argument("--out", type=Path, default=None)
    t = sub.add_parser("time", help="interleaved wall and CPU ms only (no parity)")
    t.add_argument("--work", type=Path, required=True)
    t.add_argument("--candidates", default="fp32,qop-u8s8-raw,frozen-raw-patch")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    if args.cmd == "prepare":
        prepare(args.work, args.arch)
    elif args.cmd == "time":
        names = [n.strip() for n in args.candidates.split(",") if n.strip()]
        time_candidates(args.work, names, threads=args.threads, repeats=args.repeats)
    else:
        names = [n.strip() for n in args.candidates.split(",") if n.strip()]
        run_study(args.work, names, threads=args.threads, repeats=args.repeats, out=args.out)
    print(f"done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
