"""The cliprt side, loaded through the public `cliprt.load` and timed stage by stage.

End to end uses exactly what a user calls (ClipModel.encode_images / encode_texts).
The stages use the same loaded model's parts: `ClipModel.preprocess` (PIL + numpy),
`ClipModel.tokenizer` (tokenizers) and the towers' InferenceSessions, so the tower time
is the session's own, with the SessionOptions cliprt.load sets.

On CUDA the tower is timed with IO binding on an input already in device memory and an
output left there, as the reference is timed on a device-resident tensor.

Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
from PIL import Image

import cliprt
from cliprt.runtime.sessions import TowerSession
from cliprt.runtime.vectors import l2_normalize

if TYPE_CHECKING:
    import onnxruntime as ort

    from cliprt.runtime.openvino_session import OpenVinoTowerSession

    Tower: TypeAlias = TowerSession | OpenVinoTowerSession

# A tower input or output: a host array on CPU, an OrtValue in CUDA memory on CUDA.
OnDevice: TypeAlias = "np.ndarray | ort.OrtValue"


class Engine:
    """A cliprt model on one device at one precision.

    Args:
        folder: the exported model folder.
        precision: "fp32", "fp16" or "int8".
        device: "cpu" or "cuda".
        threads: onnxruntime intra-op threads per session; also the image-decoding
            workers, so that neither side gets more cores than the other.
        spinning: onnxruntime's idle intra-op threads spin (cliprt.load's default).
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        precision: str,
        device: str,
        threads: int,
        spinning: bool = True,
    ):
        self.model = cliprt.load(
            folder,
            precision=precision,
            device=device,
            threads=threads,
            spinning=spinning,
            decode_workers=threads,
        )
        self.precision = precision
        self.device = device
        self._cuda = device == "cuda"

    @property
    def name(self) -> str:
        return f"cliprt ({self.precision}, {self.device})"

    def providers(self) -> dict[str, list[str]]:
        return dict(self.model.providers)

    def sync_fn(self) -> Callable[[], None] | None:
        # InferenceSession.run(_with_iobinding) returns after the device work is done.
        return None

    # --- stages ---

    def preprocess(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Decoded images -> float32 (n, 3, H, W), cliprt's PIL + numpy path."""
        return self.model.preprocess(list(images))

    def tokenize(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> int64 (n, longest) token ids."""
        return self.model.tokenizer(list(texts))

    def to_device(self, x: np.ndarray) -> OnDevice:
        """The tower input where the tower reads it: host array on CPU, an OrtValue in
        CUDA memory on CUDA."""
        if not self._cuda:
            return np.ascontiguousarray(x)
        import onnxruntime as ort

        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(x), "cuda", 0)

    def _run(self, tower: Tower, x: OnDevice) -> OnDevice:
        if not self._cuda:
            return l2_normalize(tower.run(x))
        # CUDA towers are onnxruntime sessions (OpenVINO is a CPU backend).
        assert isinstance(tower, TowerSession)
        binding = tower.session.io_binding()
        binding.bind_ortvalue_input(tower.input_name, x)
        binding.bind_output(tower.output_name, "cuda", 0)
        tower.session.run_with_iobinding(binding)
        return binding.get_outputs()[0]  # left on the device, as the reference's output

    def image_tower(self, x: OnDevice) -> OnDevice:
        return self._run(self.model.vision, self._cast(self.model.vision, x))

    def text_tower(self, x: OnDevice) -> OnDevice:
        return self._run(self.model.text, self._cast(self.model.text, x))

    @staticmethod
    def _cast(tower: Tower, x: OnDevice) -> OnDevice:
        if isinstance(x, np.ndarray) and x.dtype != tower.input_dtype:
            return x.astype(tower.input_dtype)
        return x

    def to_numpy(self, out: OnDevice) -> np.ndarray:
        """A tower output as normalised float32 on the host."""
        if isinstance(out, np.ndarray):
            return out
        return l2_normalize(np.asarray(out.numpy(), dtype=np.float32))

    # --- end to end: the public API ---

    def encode_files(self, files: Sequence[str | Path]) -> np.ndarray:
        return self.model.encode_images([str(f) for f in files], batch_size=len(files))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode_texts(list(texts), batch_size=len(texts))

    def close(self) -> None:
        self.model.close()
