"""A tower run by OpenVINO's CPU plugin instead of onnxruntime (the ``openvino`` extra).

OpenVINO reads the same fp32 .onnx file (the fused graph, com.microsoft ops included)
and, on CPUs with bf16 arithmetic (AMX, AVX512-BF16), runs it in bf16 when asked
(``INFERENCE_PRECISION_HINT=bf16``); measured on random:ViT-B-32 it keeps min cosine
>= 0.9999 against the fp32 tower, and an item's embedding does not depend on its batch
mates. Why OpenVINO directly and not onnxruntime's OpenVINO EP: see
benchmarks/results/bf16-backends.md.

The class has the shape of sessions.TowerSession (name, input/output names, device,
input_dtype, providers, run), so ClipModel and the bench use either alike. One compiled
model is shared; each thread gets its own InferRequest (requests are not thread-safe).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from cliprt.errors import ModelFolderError, ProviderError
from cliprt.runtime.providers import Device

logger = logging.getLogger("cliprt.runtime")

OPENVINO_INSTALL_HINT = 'pip install "cliprt[openvino]"  (or: pip install openvino)'

# OpenVINO's names of the precisions cliprt asks it for.
_OV_PRECISION = {"bf16": "bf16", "fp32": "f32"}


def openvino_available() -> bool:
    """Whether the openvino package is importable (without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def openvino_config(precision: str, threads: int) -> dict[str, Any]:
    """The CPU plugin properties cliprt sets (explicit, never the plugin's defaults).

    Args:
        precision: "bf16" or "fp32".
        threads: inference threads (one stream: latency, as onnxruntime's sequential run).
    """
    if precision not in _OV_PRECISION:
        raise ValueError(f"OpenVINO runs cliprt towers in bf16 or fp32, not {precision!r}")
    return {
        "INFERENCE_PRECISION_HINT": _OV_PRECISION[precision],
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "INFERENCE_NUM_THREADS": int(threads),
    }


class OpenVinoTowerSession:
    """A tower compiled by OpenVINO for the CPU.

    Args:
        path: the verified fp32 .onnx file.
        name: "vision" or "text", for messages.
        input_name, output_name: from the manifest's Variant.
        precision: "bf16" or "fp32" (OpenVINO's inference precision).
        threads: inference threads.

    Raises:
        ProviderError: openvino is not installed.
        ModelFolderError: OpenVINO cannot read or compile the file.
    """

    def __init__(
        self,
        path: Path,
        *,
        name: str,
        input_name: str,
        output_name: str,
        precision: str,
        threads: int,
    ) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise ProviderError(
                f"{name} tower: the OpenVINO backend needs the openvino package: "
                f"{OPENVINO_INSTALL_HINT}"
            ) from exc
        self.name = name
        self.input_name = input_name
        self.output_name = output_name
        self.device = Device("cpu")
        self.precision = precision
        self.input_dtype = np.dtype(np.int64 if name == "text" else np.float32)
        self.config = openvino_config(precision, threads)
        try:
            core = ov.Core()
            self.compiled = core.compile_model(str(path), "CPU", self.config)
        except Exception as exc:  # OpenVINO raises its own RuntimeError subclasses
            raise ModelFolderError(
                f"{path}: OpenVINO {ov.__version__} cannot compile it ({type(exc).__name__}: "
                f"{str(exc)[:300]}); load with backend onnxruntime (precision fp32/int8)"
            ) from exc
        inputs = [p.get_any_name() for p in self.compiled.inputs]
        outputs = {n for p in self.compiled.outputs for n in p.get_names()}
        if input_name not in inputs or output_name not in outputs:
            raise ModelFolderError(
                f"{path}: the manifest names input {input_name!r} / output {output_name!r} but "
                f"OpenVINO sees inputs {inputs} and outputs {sorted(outputs)}; re-export the model"
            )
        self._output = self.compiled.output(output_name)
        self.providers = [f"OpenVINO CPU ({precision}, openvino {ov.__version__})"]
        self._local = threading.local()
        logger.info("%s tower: %s on OpenVINO CPU, %s", name, path.name, self.config)

    def _request(self) -> Any:
        req = getattr(self._local, "request", None)
        if req is None:
            req = self._local.request = self.compiled.create_infer_request()
        return req

    def run(self, x: np.ndarray) -> np.ndarray:
        """Runs a batch and returns the float32 output on the host."""
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        result = self._request().infer({self.input_name: x})
        return np.array(result[self._output], dtype=np.float32, copy=True)
