"""On-device verification: recompute the manifest's probes here and compare them with
the PyTorch references the exporter recorded, against the export's parity gates.

    report = verify(cliprt.load(folder, precision="int8"))
    print(report.text()); sys.exit(0 if report.passed else 1)

The probes go through the runtime's whole path (PIL decoding and preprocessing, the
tokenizer, the ONNX towers on this machine's execution provider and CPU kernels), in one
batch per tower as at export (int8 activation scales depend on the batch).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from cliprt.errors import ModelFolderError
from cliprt.runtime.probes import ProbeRecord, probe_images
from cliprt.runtime.vectors import l2_normalize

if TYPE_CHECKING:
    from cliprt.runtime.model import ClipModel

# The export's defaults (cliprt.export.validate.DEFAULT_GATES), for folders whose manifest
# does not record the gates it was held to.
DEFAULT_GATES: dict[str, dict[str, float | None]] = {
    "fp32": {"max_abs_diff": 1e-4, "min_cosine": None},
    "fp16": {"max_abs_diff": None, "min_cosine": 0.999},
    "int8": {"max_abs_diff": None, "min_cosine": 0.99},
}


@dataclass(frozen=True)
class TowerCheck:
    """One tower's probes on this device against the recorded references (L2-normalised
    embeddings)."""

    tower: str
    n_inputs: int
    min_cosine: float
    max_abs_diff: float
    gate_min_cosine: float | None
    gate_max_abs_diff: float | None

    @property
    def failures(self) -> list[str]:
        out = []
        if self.gate_min_cosine is not None and not self.min_cosine >= self.gate_min_cosine:
            out.append(f"min cosine {self.min_cosine:.6f} < {self.gate_min_cosine:g}")
        if self.gate_max_abs_diff is not None and not self.max_abs_diff <= self.gate_max_abs_diff:
            out.append(f"max abs diff {self.max_abs_diff:.3g} > {self.gate_max_abs_diff:g}")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify` for one loaded model."""

    folder: str
    precision: str
    device: str
    machine: str
    onnxruntime: str
    checks: tuple[TowerCheck, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def text(self) -> str:
        """A few human-readable lines, one per tower, then PASS or FAIL."""
        lines = [
            f"{self.folder}: {self.precision} on {self.device} ({self.machine}, "
            f"onnxruntime {self.onnxruntime})"
        ]
        for c in self.checks:
            gate = ", ".join(
                g
                for g in (
                    f"min cosine >= {c.gate_min_cosine:g}" if c.gate_min_cosine is not None else "",
                    f"max abs diff <= {c.gate_max_abs_diff:g}"
                    if c.gate_max_abs_diff is not None
                    else "",
                )
                if g
            )
            verdict = "ok" if c.passed else "FAIL: " + "; ".join(c.failures)
            lines.append(
                f"  {c.tower:6s} {c.n_inputs} probes: min cosine {c.min_cosine:.6f}, "
                f"max abs diff {c.max_abs_diff:.2e} (gate: {gate or 'none'}) {verdict}"
            )
        lines.append("PASS" if self.passed else "FAIL")
        return "\n".join(lines)


def recorded_probes(model: ClipModel) -> ProbeRecord:
    """The probes of the model's manifest.

    Raises:
        ModelFolderError: none recorded (an older export) or malformed.
    """
    data = model.manifest.probes
    if not data:
        raise ModelFolderError(
            f"{model.folder}: the manifest records no device probes (exported by an older "
            "cliprt); re-export the model with this version to verify it on a device"
        )
    try:
        record = ProbeRecord.from_dict(data)
        probe_images(record.recipe, record.seed, record.image_size)  # a known recipe?
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFolderError(
            f"{model.folder}: the manifest's probes cannot be used ({type(exc).__name__}: {exc}); "
            "re-export the model, or upgrade cliprt if it was exported by a newer one"
        ) from exc
    return record


def _compare(tower: str, got: np.ndarray, ref: np.ndarray, gate: dict) -> TowerCheck:
    got64, ref64 = got.astype(np.float64), ref.astype(np.float64)
    if got64.shape != ref64.shape or not np.isfinite(got64).all():
        nan = float("nan")
        return TowerCheck(
            tower, len(ref64), nan, nan, gate.get("min_cosine"), gate.get("max_abs_diff")
        )
    # Cosine of normalised rows (the runtime's outputs are L2-normalised; renormalising
    # the recorded float32 references removes their rounding from the figure).
    ref64 = l2_normalize(ref64, dtype=np.float64)
    cos = (l2_normalize(got64, dtype=np.float64) * ref64).sum(1)
    return TowerCheck(
        tower=tower,
        n_inputs=len(ref64),
        min_cosine=float(cos.min()),
        max_abs_diff=float(np.abs(got64 - ref64).max()),
        gate_min_cosine=gate.get("min_cosine"),
        gate_max_abs_diff=gate.get("max_abs_diff"),
    )


def verify(model: ClipModel) -> VerifyReport:
    """Recomputes the manifest's probes with `model` and compares them with the recorded
    PyTorch references under the gates of the model's precision.

    Raises:
        ModelFolderError: the manifest records no usable probes.
    """
    record = recorded_probes(model)
    gates = (model.manifest.export.get("gates") or {}).get(model.precision) or DEFAULT_GATES.get(
        model.precision, {}
    )
    images = probe_images(record.recipe, record.seed, record.image_size)
    image_emb = model.encode_images(images, batch_size=len(images))
    text_emb = model.encode_texts(list(record.texts), batch_size=len(record.texts))
    return VerifyReport(
        folder=str(model.folder),
        precision=model.precision,
        device=model.device,
        machine=f"{platform.machine()} {platform.system()}",
        onnxruntime=ort.__version__,
        checks=(
            _compare("vision", image_emb, record.image_ref, gates),
            _compare("text", text_emb, record.text_ref, gates),
        ),
    )
