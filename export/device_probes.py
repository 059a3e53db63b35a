"""Records the device probes (cliprt.runtime.probes) at export: the recipe's images
and the fixed texts through the checkpoint family's own preprocessing, tokenizer and
PyTorch towers. `cliprt verify` recomputes them on the device."""

from __future__ import annotations

from typing import Any

import numpy as np

from cliprt.export.validate import l2_normalize
from cliprt.runtime.probes import RECIPE, TEXTS, ProbeRecord, probe_images


def record_probes(ckpt: Any, *, seed: int = 0) -> ProbeRecord:
    """The PyTorch reference embeddings of the probe recipe, through the checkpoint
    family's own preprocessing, tokenizer and towers (export.families.base.Checkpoint)."""
    size = int(ckpt.image_size)
    pixel_values = ckpt.pixel_values(probe_images(RECIPE, seed, size))
    input_ids, mask = ckpt.tokenize(list(TEXTS))
    image_ref = l2_normalize(ckpt.image_embeds(np.asarray(pixel_values, dtype=np.float32)))
    text_ref = l2_normalize(ckpt.text_embeds(input_ids, mask))
    return ProbeRecord(
        recipe=RECIPE,
        seed=seed,
        image_size=size,
        texts=TEXTS,
        image_ref=np.asarray(image_ref, dtype=np.float32),
        text_ref=np.asarray(text_ref, dtype=np.float32),
    )
