"""The CUDA execution provider path. Needs onnxruntime-gpu and a CUDA device; every test
is marked `gpu` and skips with its reason elsewhere (the CPU-side rules of device and
precision resolution are in test_providers.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cliprt
from cliprt.errors import ProviderError
from cliprt.runtime import ClipModel, CudaOptions
from cliprt.runtime.providers import CUDA_EP, cuda_available

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not cuda_available(),
        reason="onnxruntime's CUDAExecutionProvider is not installed (pip install onnxruntime-gpu)",
    ),
]

TEXTS = ["a photo of a cat", "a dog", "word " * 90]


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (int(h), int(w), 3), dtype=np.uint8)
        for h, w in rng.integers(30, 400, (6, 2))
    ]


@pytest.fixture(scope="module")
def cuda32(tiny_model_dir: Path) -> ClipModel:
    try:
        model = cliprt.load(tiny_model_dir, precision="fp32", device="cuda", warmup_batches=(1, 8))
    except ProviderError as exc:  # the EP is installed but no usable device/driver
        pytest.skip(f"CUDA EP installed but unusable here: {exc}")
    yield model
    model.close()


def test_sessions_really_run_on_cuda(cuda32: ClipModel) -> None:
    assert cuda32.device == "cuda:0"
    assert cuda32.providers["vision"][0] == CUDA_EP
    assert cuda32.providers["text"][0] == CUDA_EP
    opts = cuda32.vision.session.get_provider_options()[CUDA_EP]
    assert opts["cudnn_conv_algo_search"] == "HEURISTIC"
    assert opts["do_copy_in_default_stream"] == "1"
    assert opts["use_tf32"] == "0"


def test_auto_picks_cuda_and_fp16(tiny_model_dir: Path) -> None:
    with cliprt.load(tiny_model_dir) as m:
        assert (m.device, m.precision) == ("cuda:0", "fp16")


def test_fp32_matches_cpu(cuda32: ClipModel, model32: ClipModel, images) -> None:
    assert np.abs(cuda32.encode_images(images) - model32.encode_images(images)).max() <= 1e-4
    assert np.abs(cuda32.encode_texts(TEXTS) - model32.encode_texts(TEXTS)).max() <= 1e-4


def test_fp16_tracks_cpu_fp32(tiny_model_dir: Path, model32: ClipModel, images) -> None:
    with cliprt.load(tiny_model_dir, precision="fp16", device="cuda") as m:
        for a, b in [
            (m.encode_images(images), model32.encode_images(images)),
            (m.encode_texts(TEXTS), model32.encode_texts(TEXTS)),
        ]:
            assert (a * b).sum(axis=1).min() >= 0.999


def test_io_binding_leaves_outputs_on_the_device(cuda32: ClipModel, images) -> None:
    pixels = cuda32.preprocess(images)
    out = cuda32.vision.run_device(pixels)
    assert out.device_name().lower() == "cuda"
    assert out.shape() == [len(images), cuda32.embed_dim]
    np.testing.assert_array_equal(out.numpy(), cuda32.vision.run(pixels))


def test_cuda_graph_at_a_fixed_batch(tiny_model_dir: Path, cuda32: ClipModel, images) -> None:
    opts = CudaOptions(cuda_graph_batch=4)
    with cliprt.load(tiny_model_dir, precision="fp32", device="cuda", cuda=opts) as m:
        for _ in range(3):  # capture, then replays with new contents
            assert (
                np.abs(m.encode_images(images, batch_size=4) - cuda32.encode_images(images)).max()
                <= 1e-4
            )


def test_int8_on_cuda_is_refused(tiny_model_dir: Path) -> None:
    with pytest.raises(ProviderError, match="no int8 kernels"):
        cliprt.load(tiny_model_dir, precision="int8", device="cuda")


def test_unknown_device_id_is_a_provider_error(tiny_model_dir: Path) -> None:
    with pytest.raises(ProviderError, match="cuda:97"):
        cliprt.load(tiny_model_dir, precision="fp32", device="cuda:97")


def test_threads_share_one_cuda_session(cuda32: ClipModel, images) -> None:
    from concurrent.futures import ThreadPoolExecutor

    want = cuda32.encode_images(images)
    with ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda _: cuda32.encode_images(images), range(32)))
    assert all(np.abs(g - want).max() <= 1e-6 for g in got)


def test_files_decode_the_same_on_cuda(
    cuda32: ClipModel, model32: ClipModel, tmp_path: Path, images
) -> None:
    path = tmp_path / "a.png"
    Image.fromarray(images[0]).save(path)
    assert np.abs(cuda32.encode_images([path]) - model32.encode_images([path])).max() <= 1e-4
