"""One onnxruntime InferenceSession per tower, shared by every thread.

``InferenceSession.run`` is thread-safe and releases the GIL, so a single session serves
concurrent callers. On CUDA each call uses IO binding: the input is copied to the device
once and the output stays there (an OrtValue) until :meth:`TowerSession.run` copies it
to the host. The session's providers are checked after creation, so a CUDA request that
ends up on the CPU is an error, not a surprise.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort

from cliprt.errors import ModelFolderError, ProviderError
from cliprt.runtime.providers import (
    CPU_EP,
    CUDA_EP,
    GPU_INSTALL_HINT,
    CudaOptions,
    Device,
    cuda_provider_options,
)

logger = logging.getLogger("cliprt.runtime")

_ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def _set_config(options: ort.SessionOptions, key: str, value: str) -> None:
    # Re-adding a key makes onnxruntime print a warning; a SessionOptions given by the
    # user serves both towers.
    try:
        if options.get_session_config_entry(key) == value:
            return
    except RuntimeError:  # not set yet
        pass
    options.add_session_config_entry(key, value)


class TowerSession:
    """A tower's InferenceSession with its input/output names and device handling.

    Args:
        path: the verified .onnx file.
        name: "vision" or "text", for messages.
        input_name, output_name: from the manifest's Variant.
        device: where to run.
        options: SessionOptions (see providers.session_options).
        cuda: CUDA EP settings (ignored on CPU).
        cuda_graph_batch: capture a CUDA graph at this fixed batch size (CUDA only).
        out_dim: the output's width (the embedding dim), for the CUDA-graph buffer.
    """

    def __init__(
        self,
        path: Path,
        *,
        name: str,
        input_name: str,
        output_name: str,
        device: Device,
        options: ort.SessionOptions,
        cuda: CudaOptions | None = None,
        cuda_graph_batch: int | None = None,
        out_dim: int | None = None,
    ) -> None:
        self.name = name
        self.out_dim = out_dim
        self.device = device
        self.input_name = input_name
        self.output_name = output_name
        self.graph_batch = cuda_graph_batch if device.kind == "cuda" else None
        if device.kind == "cuda":
            # No session.disable_cpu_ep_fallback: the CUDA EP itself places shape-computing
            # nodes on the CPU on purpose, and that setting refuses every such model (seen on
            # an H200 with onnxruntime-gpu 1.31). A session that did not get the CUDA EP at
            # all is still refused below.
            providers: list = [
                (
                    CUDA_EP,
                    cuda_provider_options(
                        device.device_id,
                        cuda or CudaOptions(),
                        cuda_graph=self.graph_batch is not None,
                    ),
                )
            ]
        else:
            providers = [CPU_EP]
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=options, providers=providers
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/RuntimeError types
            if device.kind == "cuda":
                raise ProviderError(
                    f"{name} tower: onnxruntime could not create a CUDA session on {device} "
                    f"({type(exc).__name__}: {exc}); check that the GPU id exists (nvidia-smi) and "
                    f"that CUDA/cuDNN match onnxruntime-gpu {ort.__version__}; {GPU_INSTALL_HINT}"
                ) from exc
            raise ModelFolderError(
                f"{path}: onnxruntime cannot load it ({type(exc).__name__}: {exc}); re-export the model"
            ) from exc
        self.providers = list(self.session.get_providers())
        if device.kind == "cuda" and (not self.providers or self.providers[0] != CUDA_EP):
            raise ProviderError(
                f"{name} tower: CUDA was asked for on {device} but the session runs on "
                f"{self.providers} (onnxruntime fell back: a GPU id that does not exist, or CUDA/"
                f"cuDNN libraries it cannot load); check the id with nvidia-smi; {GPU_INSTALL_HINT}"
            )
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if input_name not in inputs or output_name not in outputs:
            raise ModelFolderError(
                f"{path}: the manifest names input {input_name!r} / output {output_name!r} but the "
                f"graph has inputs {sorted(inputs)} and outputs {sorted(outputs)}; re-export the model"
            )
        self.input_dtype = np.dtype(_ORT_TO_NUMPY.get(inputs[input_name].type, np.float32))
        self._lock = threading.Lock()  # only for the CUDA-graph path (shared bound buffers)
        self._graph: tuple[ort.OrtValue, ort.OrtValue, ort.IOBinding] | None = None
        logger.info("%s tower: %s on %s via %s", name, path.name, device, self.providers)

    def run_device(self, x: np.ndarray) -> ort.OrtValue:
        """Runs a batch with IO binding and returns the output left on the session's
        device (CUDA memory on CUDA). The input is copied once."""
        x = np.ascontiguousarray(x, dtype=self.input_dtype)
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, x)
        if self.device.kind == "cuda":
            binding.bind_output(self.output_name, "cuda", self.device.device_id)
        else:
            binding.bind_output(self.output_name)
        self.session.run_with_iobinding(binding)
        return binding.get_outputs()[0]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Runs a batch and returns the float32 output on the host.

        Raises:
            ModelFolderError: onnxruntime failed on the batch (the graph and its
                manifest disagree, e.g. a context length beyond the position table).
        """
        try:
            if self.graph_batch is not None:
                return self._run_graph(x)
            if self.device.kind == "cpu":
                x = np.ascontiguousarray(x, dtype=self.input_dtype)
                out = self.session.run([self.output_name], {self.input_name: x})[0]
            else:
                out = self.run_device(x).numpy()
        except MemoryError:
            raise
        except Exception as exc:  # onnxruntime's Fail/InvalidArgument/RuntimeException
            raise ModelFolderError(
                f"{self.name} tower: onnxruntime failed on a batch of shape {tuple(x.shape)} "
                f"({type(exc).__name__}: {str(exc)[:300]}); the model folder may not match "
                "its manifest: re-export the model"
            ) from exc
        return np.asarray(out, dtype=np.float32)

    def _run_graph(self, x: np.ndarray) -> np.ndarray:
        # A CUDA graph replays fixed device addresses and shapes: one bound input and
        # output buffer of graph_batch rows, updated in place; batches are zero-padded.
        b = self.graph_batch
        assert b is not None
        outs = []
        with self._lock:
            for start in range(0, len(x), b):
                chunk = np.ascontiguousarray(x[start : start + b], dtype=self.input_dtype)
                n = len(chunk)
                if n < b:
                    chunk = np.concatenate(
                        [chunk, np.zeros((b - n, *chunk.shape[1:]), chunk.dtype)]
                    )
                if self._graph is None:
                    xin = ort.OrtValue.ortvalue_from_numpy(chunk, "cuda", self.device.device_id)
                    shape = [b, self.out_dim or self.session.get_outputs()[0].shape[1]]
                    out_type = self.session.get_outputs()[0].type
                    yout = ort.OrtValue.ortvalue_from_shape_and_type(
                        shape,
                        _ORT_TO_NUMPY.get(out_type, np.float32),
                        "cuda",
                        self.device.device_id,
                    )
                    binding = self.session.io_binding()
                    binding.bind_ortvalue_input(self.input_name, xin)
                    binding.bind_ortvalue_output(self.output_name, yout)
                    self._graph = (xin, yout, binding)
                else:
                    self._graph[0].update_inplace(chunk)
                self.session.run_with_iobinding(self._graph[2])
                outs.append(np.asarray(self._graph[1].numpy()[:n], dtype=np.float32))
        return np.concatenate(outs)
