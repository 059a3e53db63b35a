"""Which model a run measures: find or export the model folder, find the reference
checkpoint, and say which devices can run here."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cliprt.bench import env as envmod
from cliprt.bench.config import MANIFEST_TOWER, BenchConfig
from cliprt.bench.progress import BenchProgress
from cliprt.bench.result import ExportRecord
from cliprt.errors import InputError, ModelFolderError
from cliprt.manifest import MANIFEST_NAME, Manifest, read_manifest

RANDOM_PREFIX = "random:"


@dataclass
class ResolvedModel:
    """The model folder a run measures and the checkpoint it is compared with.

    Attributes:
        reference: HF checkpoint folder or hub id, None without a reference.
        reference_note: where the reference came from, for the report.
        export: the export this run made first, None for a ready model folder.
    """

    folder: Path
    manifest: Manifest
    reference: str | None
    reference_note: str
    export: ExportRecord | None


class Workdir:
    """A temporary folder for exported models, rebuilt checkpoints and input files."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="cliprt-bench-")
        self.path = Path(self._tmp.name)

    def cleanup(self) -> None:
        self._tmp.cleanup()


def _export(
    source: str, out: Path, precisions: Sequence[str], progress: BenchProgress
) -> ExportRecord:
    from cliprt.export import export_model

    progress.say(f"exporting {source} ({', '.join(precisions)}) to {out} ...")
    t0 = time.perf_counter()
    export_model(
        source,
        out,
        precisions=tuple(precisions),
        progress=lambda line: progress.say(f"  export: {line}"),
    )
    seconds = time.perf_counter() - t0
    progress.say(f"export done in {seconds:.1f} s")
    return ExportRecord(source=source, seconds=seconds, precisions=list(precisions))


def _rebuild_random(arch_source: str, work: Path, progress: BenchProgress) -> str:
    from cliprt.export.random_checkpoints import build_random_checkpoint, parse_random_source

    arch = parse_random_source(arch_source)
    assert arch is not None
    progress.say(f"building {arch_source} (seed 0) as a HF checkpoint for the reference ...")
    # The exporter builds random:ARCH with seed 0 too, so these are the same weights.
    return str(build_random_checkpoint(arch, work / f"random-{arch}", seed=0))


def resolve_target(cfg: BenchConfig, work: Path, progress: BenchProgress) -> ResolvedModel:
    """Finds or makes the model folder and the reference checkpoint.

    MODEL is an exported folder or a shipped model's name (reference from --reference,
    else the manifest's source), a HF checkpoint folder or random:ARCH (both exported first), or a hub id.
    """
    want_ref = not cfg.no_reference
    # bf16 and the onnxruntime baseline run the fp32 files.
    wanted = {{"bf16": "fp32"}.get(p, p) for p in cfg.precisions}
    if "onnxruntime" in cfg.baselines:
        wanted.add("fp32")
    export_precisions = tuple(p for p in ("fp32", "fp16", "int8") if p in wanted)
    src = cfg.model
    path = Path(src).expanduser()
    if not path.exists() and "/" not in src:
        from cliprt.shipped import shipped_folder

        # A shipped model's short name (e.g. "shapes"), as cliprt.load takes it.
        path = shipped_folder(src) or path
    export: ExportRecord | None
    if src.startswith(RANDOM_PREFIX):
        ckpt = _rebuild_random(src, work, progress)
        folder = work / "model"
        export = _export(ckpt, folder, export_precisions, progress)
        export = ExportRecord(source=src, seconds=export.seconds, precisions=export.precisions)
        ref = cfg.reference or (ckpt if want_ref else None)
        note = f"{src} rebuilt with seed 0 (the weights the engine was exported from)"
    elif path.is_dir() and (path / MANIFEST_NAME).is_file():
        folder, export = path, None
        ref, note = None, ""
        if want_ref:
            ref, note = _reference_of_folder(cfg, read_manifest(folder), work, progress)
    elif path.is_dir() and (path / "config.json").is_file():
        folder = work / "model"
        export = _export(str(path), folder, export_precisions, progress)
        ref = cfg.reference or (str(path) if want_ref else None)
        note = f"the checkpoint folder {path} the engine was exported from"
    elif path.exists():
        raise InputError(
            f"MODEL {src!r} is neither a cliprt model folder (no {MANIFEST_NAME}) nor a HF "
            "checkpoint folder (no config.json); give one of those, a hub id or random:ViT-B-32"
        )
    else:
        # A hub id: the exporter downloads it (or says why it cannot).
        folder = work / "model"
        export = _export(src, folder, export_precisions, progress)
        ref = cfg.reference or (src if want_ref else None)
        note = f"hub checkpoint {src}"
    if cfg.reference and want_ref:
        note = f"--reference {cfg.reference}"
    manifest = read_manifest(folder)
    return ResolvedModel(folder, manifest, ref if want_ref else None, note, export)


def _reference_of_folder(
    cfg: BenchConfig, manifest: Manifest, work: Path, progress: BenchProgress
) -> tuple[str, str]:
    if cfg.reference:
        return cfg.reference, f"--reference {cfg.reference}"
    source = manifest.source
    if source.startswith(RANDOM_PREFIX):
        return _rebuild_random(source, work, progress), f"{source} rebuilt with seed 0"
    from cliprt.shipped import SOURCE_SCHEME, find_checkpoint

    if source.startswith(SOURCE_SCHEME):  # a checkpoint of cliprt's (package or source tree)
        shipped = find_checkpoint(source.removeprefix(SOURCE_SCHEME))
        if shipped is not None:
            return str(shipped), f"the shipped checkpoint {source}"
    if Path(source).is_dir():
        return source, f"the manifest's source {source}"
    if "/" in source and not Path(source).is_absolute():
        return source, f"hub checkpoint {source} (the manifest's source)"
    raise InputError(
        f"the model folder was exported from {source!r}, which is not available here: "
        "pass --reference CHECKPOINT (the HF checkpoint folder it came from) or --no-reference"
    )


def check_model(cfg: BenchConfig, model: ResolvedModel) -> None:
    """Raises ModelFolderError / InputError when the folder lacks an asked-for precision
    or is shorter than --seq-len."""
    # bf16 runs the fp32 files (OpenVINO / ARM64 fastmath).
    missing = [
        p
        for p in cfg.precisions
        if any(
            {"bf16": "fp32"}.get(p, p) not in model.manifest.towers.get(MANIFEST_TOWER[t], {})
            for t in cfg.towers
        )
    ]
    if missing:
        raise ModelFolderError(
            f"{model.folder} has no {', '.join(missing)} towers (it has "
            f"{', '.join(model.manifest.precisions('vision'))}); drop them from --precision "
            "or re-export with them"
        )
    if cfg.seq_len > model.manifest.context_length:
        raise InputError(
            f"--seq-len {cfg.seq_len} exceeds the model's context length "
            f"{model.manifest.context_length}"
        )


def device_skip_reason(device: str, want_ref: bool) -> str | None:
    """Why `device` cannot be measured here; None where it can."""
    if device == "cpu":
        return None
    from cliprt.runtime.providers import cuda_available

    if not cuda_available():
        return (
            "onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu on a "
            "machine with an NVIDIA GPU)"
        )
    if not envmod.gpu_names():
        return "nvidia-smi sees no NVIDIA GPU"
    if want_ref:
        from cliprt.bench.reference import cuda_available as torch_cuda

        ok, reason = torch_cuda()
        if not ok:
            return reason
    return None
