"""One benchmark run, start to end: resolve the model (resolve.py), make the inputs,
measure (measure.py), probe cold starts (cold_start.py) and assemble the typed
BenchResult (result.py) that report.py renders.

torch is imported only when a reference is asked for.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict

from cliprt.bench import env as envmod
from cliprt.bench.cold_start import cold_starts
from cliprt.bench.config import BenchConfig, omp_wait_policy
from cliprt.bench.inputs import BenchInputs, make_inputs, token_counter
from cliprt.bench.measure import Measurement
from cliprt.bench.progress import BenchProgress
from cliprt.bench.resolve import (
    ResolvedModel,
    Workdir,
    check_model,
    device_skip_reason,
    resolve_target,
)
from cliprt.bench.result import (
    BenchResult,
    ImageInfo,
    InputsInfo,
    MemoryProbe,
    ModelInfo,
    Skipped,
)


def run(cfg: BenchConfig, *, progress: BenchProgress | None = None) -> BenchResult:
    """Runs the benchmark described by `cfg` (values as bench_parser accepts them).

    OMP_WAIT_POLICY is set for the run (torch's OpenMP pool reads it once, before the
    exporter or the reference first run torch) and restored after it.

    Raises:
        InputError: an unusable MODEL or reference.
        CliprtError: export, load or measurement failures from cliprt.
    """
    progress = progress or BenchProgress()
    torch_was_loaded = "torch" in sys.modules
    work = Workdir()
    try:
        with omp_wait_policy(cfg.omp_wait_policy):
            return _run(cfg, progress, work, torch_was_loaded=torch_was_loaded)
    finally:
        work.cleanup()


def _run(
    cfg: BenchConfig, progress: BenchProgress, work: Workdir, *, torch_was_loaded: bool
) -> BenchResult:
    t_start = time.perf_counter()
    env = envmod.environment(threads=cfg.threads, wait_policy=cfg.wait_policy)
    env["torch_loaded_before_policy"] = torch_was_loaded
    for line in envmod.header_lines(env):
        progress.say(line)
    model = resolve_target(cfg, work.path, progress)
    check_model(cfg, model)
    inputs = make_inputs(
        work.path / "inputs",
        n=max(cfg.batches),
        seq_len=cfg.seq_len,
        count_tokens=token_counter(model.folder / model.manifest.tokenizer.file),
    )
    bench = Measurement(cfg, model, inputs, progress)
    skipped = bench.out.skipped
    devices = []
    for device in cfg.devices:
        reason = device_skip_reason(device, model.reference is not None)
        if reason:
            progress.say(f"skipping {device}: {reason}")
            skipped.append(Skipped(f"device {device}", reason))
        else:
            devices.append(device)
    per_device = len(cfg.towers) * len(cfg.batches) * (1 + 2 * len(cfg.precisions))
    progress.total = per_device * len(devices)
    for device in devices:
        bench.run_device(device)
    memory: list[MemoryProbe] = []
    if cfg.memory and cfg.cold_repeats > 0:
        memory = cold_starts(cfg, model, inputs, work.path, progress, devices)
    if "fp16" in cfg.precisions and "cpu" in devices:
        skipped.append(
            Skipped(
                "fp16 on cpu",
                "measured as asked, but fp16 is meant for CUDA: on the CPU "
                "execution provider it is slower than fp32",
            )
        )
    if "cuda" not in devices:
        skipped.append(
            Skipped("GPU memory, CUDA IO binding, fp16 reference", "no CUDA run in this benchmark")
        )
    if model.reference is None:
        skipped.append(Skipped("reference", "--no-reference"))
    env["load_average_end"] = envmod.load_average()
    return BenchResult(
        config=cfg,
        env=env,
        model=_model_info(cfg, model),
        inputs=_inputs_info(inputs),
        measured=bench.out,
        memory=memory,
        notes=_notes(env),
        devices_run=devices,
        torch_imported="torch" in sys.modules,
        wall_s=time.perf_counter() - t_start,
    )


def _notes(env: envmod.Environment) -> list[str]:
    notes = []
    start, end = env["load_average_start"], env.get("load_average_end")
    busy = max((start or [0.0])[0], (end or [0.0])[0])
    if busy > env["cpu"]["usable_cores"]:
        notes.append(
            f"the machine was busy (load average up to {busy:.1f} on "
            f"{env['cpu']['usable_cores']} cores): other work shared the cores, so "
            "absolute times are pessimistic and noisy; ratios are measured side by side"
        )
    return notes


def _model_info(cfg: BenchConfig, model: ResolvedModel) -> ModelInfo:
    m = model.manifest
    totals = {
        p: sum(m.towers[t][p].bytes for t in m.towers if p in m.towers[t])
        for p in ("fp32", "fp16", "int8")
        if any(p in m.towers[t] for t in m.towers)
    }
    ref_bytes = None
    if model.reference is not None:
        from cliprt.bench.reference import checkpoint_bytes

        ref_bytes = checkpoint_bytes(model.reference)
    return ModelInfo(
        arg=cfg.model,
        folder=str(model.folder),
        # random:ARCH is exported from a temporary folder: name the arch instead.
        source=(model.export.source if model.export else None) or m.source,
        embed_dim=m.embed_dim,
        image_size=m.image_size,
        context_length=m.context_length,
        arch=m.arch,
        reference=model.reference,
        reference_note=model.reference_note,
        export=model.export,
        manifest_parity={
            t: {p: asdict(v.parity) if v.parity else None for p, v in vs.items()}
            for t, vs in m.towers.items()
        },
        engine_tower_bytes={
            t: {p: v.bytes for p, v in variants.items()} for t, variants in m.towers.items()
        },
        engine_total_bytes=totals,
        reference_checkpoint_bytes=ref_bytes,
    )


def _inputs_info(inputs: BenchInputs) -> InputsInfo:
    return InputsInfo(
        images=[
            ImageInfo(file=f.name, width=im.width, height=im.height, bytes=f.stat().st_size)
            for f, im in zip(inputs.image_files, inputs.images, strict=True)
        ],
        texts=list(inputs.texts),
        seq_len=inputs.seq_len,
    )
