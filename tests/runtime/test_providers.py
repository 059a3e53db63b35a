"""Device and precision resolution, and the options sessions get (CPU-side: these run
without a GPU; test_cuda.py covers the GPU itself)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

import cliprt
from cliprt.errors import InputError, ProviderError
from cliprt.manifest import read_manifest
from cliprt.runtime.providers import (
    CudaOptions,
    Device,
    cuda_available,
    cuda_provider_options,
    resolve_device,
    resolve_precision,
    session_options,
)

no_cuda = pytest.mark.skipif(
    cuda_available(), reason="checks the missing-CUDA path; CUDA EP is installed here"
)


@pytest.mark.parametrize(
    ("spec", "want"),
    [("cpu", Device("cpu")), ("CPU", Device("cpu")), (" cpu ", Device("cpu"))],
)
def test_cpu_specs(spec: str, want: Device) -> None:
    assert resolve_device(spec) == want


@pytest.mark.parametrize(
    "spec", ["tpu", "cuda:", "cuda:x", "cuda:-1", "cpu:0", "auto:1", "gpu", "", 1.5]
)
def test_unknown_devices_are_input_errors(spec) -> None:
    with pytest.raises(InputError, match="device"):
        resolve_device(spec)


@no_cuda
def test_auto_is_cpu_without_cuda() -> None:
    assert resolve_device("auto") == Device("cpu")
    assert resolve_device(None) == Device("cpu")


@no_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3", 1])
def test_cuda_without_its_provider_says_how_to_install(tiny_model_dir: Path, spec) -> None:
    with pytest.raises(
        ProviderError,
        match=r"CUDAExecutionProvider.*pip uninstall -y onnxruntime && pip install onnxruntime-gpu.*cliprt\[gpu\]",
    ):
        cliprt.load(tiny_model_dir, device=spec)


def test_precision_rules(tiny_model_dir: Path) -> None:
    m = read_manifest(tiny_model_dir)
    cpu, cuda = Device("cpu"), Device("cuda", 0)
    assert resolve_precision("auto", cpu, m, "f") == "int8"
    assert resolve_precision("auto", cuda, m, "f") == "fp16"
    assert resolve_precision("fp32", cuda, m, "f") == "fp32"
    with pytest.raises(ProviderError, match="CUDA execution provider has no int8 kernels"):
        resolve_precision("int8", cuda, m, "f")
    with pytest.raises(InputError, match="unknown precision 'bf17'"):
        resolve_precision("bf17", cpu, m, "f")


def test_session_options_are_explicit() -> None:
    so = session_options(threads=3, spinning=False)
    assert so.intra_op_num_threads == 3 and so.inter_op_num_threads == 1
    assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session_options().intra_op_num_threads >= 1
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="threads must be a positive int"):
            session_options(threads=bad)


def test_cuda_provider_options() -> None:
    opts = cuda_provider_options(2, CudaOptions(gpu_mem_limit=2 << 30), cuda_graph=True)
    assert opts == {
        "device_id": "2",
        "cudnn_conv_algo_search": "HEURISTIC",
        "do_copy_in_default_stream": "1",
        "arena_extend_strategy": "kSameAsRequested",
        "use_tf32": "0",
        "gpu_mem_limit": str(2 << 30),
        "enable_cuda_graph": "1",
    }
    assert "enable_cuda_graph" not in cuda_provider_options(0, CudaOptions(), cuda_graph=False)
