"""What a user would run instead of cliprt, timed in the same interleaved calls.

Tower baselines, each fed the same tensors as cliprt and the reference:

- ``onnxruntime``: plain onnxruntime on the same fp32 .onnx file with default
  SessionOptions (only the thread count set, as cliprt's), so the engine's own gain over
  onnxruntime is visible;
- ``torch-fp32``: transformers CLIPModel with its default attention (sdpa), fp32;
- ``torch-bf16``: the same with the weights cast to bf16 (``model.to(torch.bfloat16)``),
  where the CPU has bf16 arithmetic (AMX, AVX512-BF16, ARM BF16);
- ``torch-compile``: torch-bf16 (or torch-fp32 on CPUs without bf16) under
  ``torch.compile`` (opt-in: compiling takes minutes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cliprt.bench.result import Skipped
from cliprt.manifest import Manifest
from cliprt.runtime.vectors import l2_normalize

if TYPE_CHECKING:
    import torch

BASELINES = ("onnxruntime", "torch-fp32", "torch-bf16", "torch-compile")
DEFAULT_BASELINES = ("onnxruntime", "torch-fp32", "torch-bf16")


class OrtDefault:
    """onnxruntime with default SessionOptions (threads only) on the fp32 files."""

    def __init__(self, folder: Path, manifest: Manifest, threads: int) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        self.sessions = {}
        for tower, kind in (("image", "vision"), ("text", "text")):
            v = manifest.towers[kind]["fp32"]
            s = ort.InferenceSession(str(folder / v.file), so, providers=["CPUExecutionProvider"])
            self.sessions[tower] = (s, v.input_name)

    def tower(self, tower: str, host: np.ndarray) -> Callable[[], np.ndarray]:
        """One call of `tower` ("image" / "text") on `host`, ready to be timed."""
        s, name = self.sessions[tower]
        x = np.ascontiguousarray(host, dtype=np.int64 if tower == "text" else np.float32)
        return lambda: l2_normalize(s.run(None, {name: x})[0])


class TorchBaseline:
    """transformers CLIPModel (sdpa attention) at fp32 or with bf16 weights."""

    def __init__(self, checkpoint: str, *, threads: int, bf16: bool, compile: bool) -> None:
        import torch
        from transformers import CLIPModel

        torch.set_num_threads(threads)
        self.dtype = torch.bfloat16 if bf16 else torch.float32
        model = CLIPModel.from_pretrained(checkpoint, attn_implementation="sdpa")
        self.model = model.to(self.dtype).eval()
        self.image = self.model.get_image_features
        self.text = self.model.get_text_features
        if compile:
            self.image = torch.compile(self.image)
            self.text = torch.compile(self.text)

    def tower(self, tower: str, host: np.ndarray) -> Callable[[], torch.Tensor]:
        """One call of `tower` ("image" / "text") on `host`, ready to be timed."""
        import torch

        from cliprt.bench.reference import _features, _normalize

        t = torch.from_numpy(np.ascontiguousarray(host))
        if tower == "image":
            x = t.to(self.dtype)

            def run() -> torch.Tensor:
                with torch.inference_mode():
                    return _normalize(_features(self.image(pixel_values=x)))

        else:
            ids = t.to(torch.int64)
            mask = torch.ones_like(ids)

            def run() -> torch.Tensor:
                with torch.inference_mode():
                    return _normalize(_features(self.text(input_ids=ids, attention_mask=mask)))

        return run


Baseline = OrtDefault | TorchBaseline


def cpu_bf16() -> bool:
    """Whether this CPU computes bf16 natively (where the torch-bf16 baseline is fair)."""
    from cliprt.runtime.cpu import cpu_features

    return cpu_features().bf16


def load_baselines(
    names: tuple[str, ...],
    *,
    folder: Path,
    manifest: Manifest,
    checkpoint: str | None,
    threads: int,
) -> tuple[dict[str, Baseline], list[Skipped]]:
    """The baselines asked for that can run here, and what was skipped and why."""
    out: dict[str, Baseline] = {}
    skipped: list[Skipped] = []
    bf16 = cpu_bf16()
    for name in names:
        if name == "onnxruntime":
            if all("fp32" in manifest.towers[t] for t in ("vision", "text")):
                out[name] = OrtDefault(folder, manifest, threads)
            else:
                skipped.append(Skipped(f"baseline {name}", "the folder has no fp32"))
            continue
        if checkpoint is None:
            skipped.append(Skipped(f"baseline {name}", "no reference checkpoint"))
            continue
        if name == "torch-bf16" and not bf16:
            skipped.append(
                Skipped(
                    "baseline torch-bf16",
                    "this CPU has no bf16 arithmetic (AMX, AVX512-BF16, ARM BF16): "
                    "bf16 weights would be emulated",
                )
            )
            continue
        out[name] = TorchBaseline(
            checkpoint,
            threads=threads,
            bf16=name == "torch-bf16" or (name == "torch-compile" and bf16),
            compile=name == "torch-compile",
        )
    return out, skipped
