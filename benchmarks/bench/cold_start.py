"""Cold start and peak memory: each side alone in fresh processes (memory.probe), every
precision and device of the run, `cold_repeats` times each."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from cliprt.bench.config import BenchConfig
from cliprt.bench.inputs import BenchInputs
from cliprt.bench.progress import BenchProgress
from cliprt.bench.resolve import ResolvedModel
from cliprt.bench.result import MemoryProbe


def cold_starts(
    cfg: BenchConfig,
    model: ResolvedModel,
    inputs: BenchInputs,
    work: Path,
    progress: BenchProgress,
    devices: Sequence[str],
) -> list[MemoryProbe]:
    """Runs the fresh-process probes; each embeds a batch of max(--batch) images and texts.

    Args:
        work: a folder for the probes' input list.
        devices: the devices that ran (CUDA only where it could).
    """
    from cliprt.bench.memory import probe

    n = max(cfg.batches)
    spec = work / "probe_inputs.json"
    spec.write_text(
        json.dumps(
            {
                "images": [str(f) for f in inputs.file_batch(n)],
                "texts": inputs.text_batch(n),
            }
        )
    )
    out: list[MemoryProbe] = []
    for device in devices:
        sides: list[tuple[str, str, str]] = [
            ("engine", str(model.folder), p)
            for p in cfg.precisions
            if not (device == "cuda" and p == "int8")
        ]
        if model.reference is not None:
            sides.append(("reference", model.reference, "fp32"))
            if device == "cuda":
                sides.append(("reference", model.reference, "fp16"))
        for side, path, prec in sides:
            for i in range(cfg.cold_repeats):
                progress.say(
                    f"cold start + RSS: {side} {prec} {device} (fresh process {i + 1}/{cfg.cold_repeats}) ..."
                )
                r = MemoryProbe(
                    **probe(
                        side,
                        model=path,
                        precision=prec,
                        device=device,
                        threads=cfg.threads,
                        inputs_json=str(spec),
                        spinning=cfg.spinning,
                        omp_wait_policy=cfg.omp_wait_policy,
                    ),
                    repeat=i,
                    batch=n,
                )
                out.append(r)
                progress.say(
                    f"  cold start image {r.cold_start_image_ms:.0f} ms, peak RSS "
                    f"{r.peak_rss_bytes / 2**20:.0f} MiB"
                )
    return out
