"""Records the device probes (cliprt.runtime.probes) at export: the recipe's images
through the Hugging Face image processor, the fixed texts through the HF tokenizer, both
through the PyTorch towers. `cliprt verify` recomputes them on the device."""

from __future__ import annotations

from typing import Any

import numpy as np

from cliprt.export.validate import l2_normalize
from cliprt.runtime.probes import RECIPE, TEXTS, ProbeRecord, probe_images


def record_probes(
    towers: Any, image_processor: Any, tokenizer: Any, context_length: int, *, seed: int = 0
) -> ProbeRecord:
    """The PyTorch reference embeddings of the probe recipe for `towers`."""
    from cliprt.export.towers import reference_image_embeds, reference_text_embeds

    size = int(towers.model.config.vision_config.image_size)
    images = probe_images(RECIPE, seed, size)
    pixel_values = image_processor(images=images, return_tensors="np")["pixel_values"]
    tok = tokenizer(
        list(TEXTS),
        padding=True,
        truncation=True,
        max_length=context_length,
        return_tensors="np",
    )
    image_ref = l2_normalize(reference_image_embeds(towers, pixel_values.astype(np.float32)))
    text_ref = l2_normalize(
        reference_text_embeds(towers, tok["input_ids"].astype(np.int64), tok["attention_mask"])
    )
    return ProbeRecord(
        recipe=RECIPE,
        seed=seed,
        image_size=size,
        texts=TEXTS,
        image_ref=image_ref.astype(np.float32),
        text_ref=text_ref.astype(np.float32),
    )
