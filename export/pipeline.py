"""export_model: the one pipeline every source goes through.

resolve SRC -> load (eager attention) -> torch -> ONNX per tower -> fuse -> fp32 /
fp16 / int8 variants -> validate each against the PyTorch tower (gates) -> manifest ->
atomic rename to OUT.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cliprt.errors import ExportError
from cliprt.export.memory import release_memory
from cliprt.export.source import TOKENIZER_FILE
from cliprt.manifest import (
    FORMAT_VERSION,
    PRECISIONS,
    Manifest,
    Parity,
    Preprocessing,
    Variant,
    file_entry,
    write_manifest,
)
from cliprt.runtime.onnx_external import external_data_locations

if TYPE_CHECKING:
    import numpy as np

    from cliprt.export.families.base import Checkpoint, TowerArch
    from cliprt.export.int8 import Int8Options
    from cliprt.export.int8_embedding import EmbeddingQuant
    from cliprt.export.source import ResolvedSource
    from cliprt.export.validate import Gate, Probes
    from cliprt.runtime.probes import ProbeRecord

DEFAULT_OPSET = 17
# Under protobuf's 2 GiB message limit, and low enough that a ViT-H text tower (1.4 GB)
# takes the external-data path too: its optimizer reads the weights lazily
# (optimize._optimize_lazily), where a whole in-memory graph is held about twice, which
# got a full-depth ViT-H export killed on a 24 GB box shared with other jobs.
EXTERNAL_DATA_BYTES = 1_000_000_000


def parse_precisions(precisions: str | Iterable[str]) -> tuple[str, ...]:
    """Normalises "fp32,int8" or ("fp32", "int8") to PRECISIONS order.

    Raises:
        ExportError: empty, or an unknown precision (the message lists the known ones).
    """
    items = precisions.split(",") if isinstance(precisions, str) else list(precisions)
    wanted = {p.strip().lower() for p in items if p.strip()}
    unknown = sorted(wanted - set(PRECISIONS))
    if unknown:
        raise ExportError(
            f"unknown precision {', '.join(map(repr, unknown))}; known: {', '.join(PRECISIONS)}"
        )
    if not wanted:
        raise ExportError(f"no precision given; choose among {', '.join(PRECISIONS)}")
    return tuple(p for p in PRECISIONS if p in wanted)


class _Stages:
    """Times each stage and reports it through `progress` (one line per stage)."""

    def __init__(self, progress: Callable[[str], None] | None) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}

    def say(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    @contextmanager
    def stage(self, name: str) -> Iterator[list[str]]:
        start = time.perf_counter()
        note: list[str] = []
        yield note
        seconds = time.perf_counter() - start
        # What the stage freed goes back to the system before the next one starts (a
        # large tower's stages each free gigabytes; see export.memory).
        release_memory()
        self.timings[name] = round(seconds, 3)
        self.say(f"{name}: {seconds:.1f} s" + (f" ({'; '.join(note)})" if note else ""))


def export_model(
    source: str,
    out: str | Path,
    *,
    precisions: str | Iterable[str] = PRECISIONS,
    opset: int = DEFAULT_OPSET,
    force: bool = False,
    gates: Mapping[str, Gate | float | str] | None = None,
    int8: Int8Options | None = None,
    progress: Callable[[str], None] | None = None,
    external_data_bytes: int = EXTERNAL_DATA_BYTES,
) -> Path:
    """Exports a CLIP, OpenCLIP or SigLIP checkpoint to a validated cliprt model folder.

    Args:
        source: a local checkpoint folder (transformers CLIPModel or SiglipModel, or
            OpenCLIP's open_clip_config.json + weights), a hub id, an OpenCLIP name
            (hf-hub:ORG/NAME or ARCH/pretrained_tag), or random:NAME (see
            random_checkpoints.all_random_archs()).
        out: the model folder to create. Written beside, renamed in at the end.
        precisions: any of "fp32", "fp16", "int8" (iterable or comma-separated).
        opset: ONNX opset of the exported graphs.
        force: replace an existing `out`.
        gates: overrides of validate.DEFAULT_GATES, e.g. {"int8.min_cosine": 0.98};
            recorded in the manifest and reported through `progress`.
        int8: an int8.Int8Options (per channel, reduce_range, excluded nodes).
        progress: called with one line per finished stage (with its seconds).
        external_data_bytes: a tower whose exported graph is larger than this (bytes)
            keeps its weights in one external data file beside its .onnx (every variant
            of it too), listed with its sha256 in the manifest. The default (1 GB) stays
            under protobuf's 2 GB limit and bounds the optimizer's memory; tests lower
            it to exercise the path.

    Returns:
        The model folder.

    Raises:
        ExportError: bad source, arguments or output folder, or a failed export step.
        ParityError: a variant failed its gate; nothing is written to `out`.
    """
    from cliprt.export.folder import check_out, publish, staging_folder
    from cliprt.export.int8 import Int8Options
    from cliprt.export.validate import resolve_gates

    wanted = parse_precisions(precisions)
    gate_map, gate_overrides = resolve_gates(gates)
    int8_options = int8 if int8 is not None else Int8Options()
    if not isinstance(opset, int) or not 14 <= opset <= 21:
        raise ExportError(
            f"opset {opset!r} is not supported; use 14 to 21 (default {DEFAULT_OPSET})"
        )
    out = Path(out).expanduser().absolute()
    check_out(out, force=force)
    st = _Stages(progress)
    st.say(f"exporting {source} -> {out} ({', '.join(wanted)}, opset {opset})")
    if gate_overrides:
        st.say(f"gates overridden: {gate_overrides}")

    with staging_folder(out) as staging:
        work = staging / ".work"
        work.mkdir()
        manifest = _build(
            _Build(
                source=source,
                staging=staging,
                work=work,
                st=st,
                wanted=wanted,
                opset=opset,
                gate_map=gate_map,
                gate_overrides=gate_overrides,
                int8_options=int8_options,
                external_data_bytes=external_data_bytes,
            )
        )
        shutil.rmtree(work)
        write_manifest(staging, manifest)
        _make_readable(staging)
        with st.stage("publish"):
            publish(staging, out, force=force)
    return out


@dataclass(frozen=True)
class _Build:
    """What every stage of one export reads: the request, the folders and the stage timer.

    Attributes:
        staging: the folder being filled (renamed to OUT at the end).
        work: scratch space inside `staging`, removed before the manifest is written.
        wanted: the precisions, in PRECISIONS order.
        gate_map, gate_overrides: validate.resolve_gates' gates and the overrides asked for.
    """

    source: str
    staging: Path
    work: Path
    st: _Stages
    wanted: tuple[str, ...]
    opset: int
    gate_map: dict[str, Gate]
    gate_overrides: dict[str, float | dict[str, float]]
    int8_options: Int8Options
    external_data_bytes: int


@dataclass(frozen=True)
class _References:
    """What the PyTorch checkpoint gives before it is freed: the probes every variant is
    validated against, and the tokenizer / preprocessing parity checks."""

    probes: Probes
    device_probes: ProbeRecord
    tokenizer_check: dict[str, object]
    preprocessing_check: dict[str, object]
    calibration: dict[str, np.ndarray] | None


@dataclass(frozen=True)
class _Traced:
    """The raw ONNX graph of each tower, and whether it keeps external data."""

    raw_paths: dict[str, Path]
    external: dict[str, bool]
    keep_raw: bool


@dataclass(frozen=True)
class _Optimized:
    """The fused fp32 graph of each tower (the fp32 variant and the base of the others)."""

    fp32_paths: dict[str, Path]
    fused: dict[str, dict[str, int]]
    attention_fused: dict[str, bool]


@dataclass
class _Variants:
    """The variants made and validated so far, per tower and precision."""

    towers: dict[str, dict[str, Variant]] = field(
        default_factory=lambda: {"vision": {}, "text": {}}
    )
    embedding_quant: list[EmbeddingQuant] = field(default_factory=list)
    drift: dict[str, dict[str, float]] = field(default_factory=dict)


def _build(b: _Build) -> Manifest:
    """Runs the stages in order; the PyTorch model is freed once both towers are traced."""
    src, ckpt = _load(b)
    refs = _reference(b, ckpt)
    arches = {"vision": ckpt.vision_arch, "text": ckpt.text_arch}
    strict, model_type = ckpt.strict_fusion, ckpt.optimizer_model_type
    family, label = ckpt.family, src.label
    manifest_facts = _facts(ckpt)
    traced = _Traced(raw_paths={}, external={}, keep_raw=_keeps_raw(b))
    # A large checkpoint (weights over the external-data threshold) is loaded again for
    # each tower's trace: its weights are mapped from the checkpoint file, and the
    # pages the reference embeddings read (both towers) stay resident as long as any
    # tensor of the mapping lives; a fresh load maps them again and the trace reads
    # only its own tower's. The trace of a ViT-H text tower then no longer sits on top
    # of the vision tower's 2.5 GB.
    reload_per_tower = 4 * ckpt.n_params > b.external_data_bytes
    for kind in ("vision", "text"):
        if reload_per_tower:
            del ckpt
            release_memory()
            ckpt = _reload(b, src, kind)
        _trace(b, ckpt, kind, traced)
    del ckpt
    release_memory()

    opt = _optimize(b, traced, arches, strict=strict, model_type=model_type)
    variants = _Variants()
    for precision in b.wanted:
        paths = _variant(b, precision, traced, opt, refs, variants)
        parities = _validate(b, precision, paths, refs.probes, variants)
        _record(b, precision, paths, parities, opt, variants)
    return _manifest(b, refs, variants, family=family, label=label, facts=manifest_facts)


def _load(b: _Build) -> tuple[ResolvedSource, Checkpoint]:
    from cliprt.export.families import family_module
    from cliprt.export.source import resolve_source

    st, source, work = b.st, b.source, b.work
    with st.stage("resolve source") as note:
        src = resolve_source(source, work)
        note.append(f"{src.family}, {src.kind} {src.folder}")

    with st.stage("load checkpoint") as note:
        ckpt = family_module(src.family).load(src.folder, source, work)
        note.append(f"{ckpt.n_params / 1e6:.1f}M parameters")
    return src, ckpt


def _reference(b: _Build, ckpt: Checkpoint) -> _References:
    from cliprt.export.device_probes import record_probes
    from cliprt.export.validate import build_probes, check_preprocessing, check_tokenizer

    st, staging, wanted, int8_options = b.st, b.staging, b.wanted, b.int8_options
    # Reference embeddings first: the PyTorch model is then freed as soon as both
    # towers are traced, so that the ONNX optimizer and the variants of a large tower
    # (ViT-H: 2.5 GB of fp32 weights) never share memory with it.
    with st.stage("reference embeddings (PyTorch)") as note:
        probes = build_probes(ckpt)
        note.append(f"{len(probes.pixel_values)} images, {len(probes.input_ids)} texts")
        # Recorded in the manifest for `cliprt verify` on the device (runtime.probes).
        device_probes = record_probes(ckpt)
    with st.stage("tokenizer and preprocessing parity") as note:
        shutil.copyfile(ckpt.tokenizer_json, staging / TOKENIZER_FILE)
        shutil.copyfile(ckpt.preprocessor_json, staging / Path(ckpt.preprocessor_json).name)
        tokenizer_check = check_tokenizer(ckpt, staging / TOKENIZER_FILE)
        preprocessing_check = check_preprocessing(ckpt)
        note.append(
            f"{tokenizer_check['texts']} texts equal; pixel max abs diff "
            f"{preprocessing_check['max_abs_diff']:.2e}"
        )

    calibration = None
    if "int8" in wanted and int8_options.static:
        from cliprt.export.calibration import checkpoint_calibration_arrays

        with st.stage("int8 calibration inputs") as note:
            calibration = checkpoint_calibration_arrays(ckpt)
            note.append(", ".join(f"{k} {tuple(v.shape)}" for k, v in calibration.items()))
    return _References(
        probes=probes,
        device_probes=device_probes,
        tokenizer_check=tokenizer_check,
        preprocessing_check=preprocessing_check,
        calibration=calibration,
    )


def _keeps_raw(b: _Build) -> bool:
    """Whether the int8 formulation needs the unfused graphs after optimization."""
    opts = b.int8_options
    return "int8" in b.wanted and opts.static and opts.graph == "raw"


def _reload(b: _Build, src: ResolvedSource, kind: str) -> Checkpoint:
    """The checkpoint loaded afresh for one tower's trace (see _build)."""
    from cliprt.export.families import family_module

    folder = b.work / f"reload-{kind}"
    folder.mkdir()
    return family_module(src.family).load(src.folder, b.source, folder)


def _trace(b: _Build, ckpt: Checkpoint, kind: str, traced: _Traced) -> None:
    """Traces one tower to its raw ONNX graph, recorded in `traced`."""
    from cliprt.export.onnx_graph import export_tower, onnx_bytes

    tower = ckpt.vision if kind == "vision" else ckpt.text
    raw_dir = b.work / f"{kind}-raw"
    raw_dir.mkdir()
    raw_path = traced.raw_paths[kind] = raw_dir / f"{kind}.raw.onnx"
    with b.st.stage(f"{kind}: torch -> onnx") as note:
        export_tower(tower, kind, raw_path, opset=b.opset, exporter=ckpt.exporter, ckpt=ckpt)
        size = onnx_bytes(raw_dir)
        # Past the threshold (2 GB protobuf limit by default) the tower's weights go
        # to one external data file beside its .onnx, listed in the manifest.
        external = traced.external[kind] = size > b.external_data_bytes
        note.append(f"{size / 1e6:.0f} MB" + (", external data" if external else ""))


def _optimize(
    b: _Build,
    traced: _Traced,
    arches: Mapping[str, TowerArch],
    *,
    strict: bool,
    model_type: str,
) -> _Optimized:
    from cliprt.export.external_data import externalize
    from cliprt.export.optimize import optimize_tower

    st, staging, work, wanted = b.st, b.staging, b.work, b.wanted
    raw_paths, external, keep_raw = traced.raw_paths, traced.external, traced.keep_raw
    fused: dict[str, dict[str, int]] = {}
    attention_fused: dict[str, bool] = {}
    fp32_paths: dict[str, Path] = {}
    for kind in ("vision", "text"):
        # The optimized fp32 graph is the fp32 variant and the base of the others.
        dst = (staging if "fp32" in wanted else work) / f"{kind}.fp32.onnx"
        arch = arches[kind]
        with st.stage(f"{kind}: optimize") as note:
            if external[kind]:
                # torch keeps a graph under 2 GB inline: moved out once, the optimizer
                # and the int8 calibration read the graph alone (external_data).
                externalize(raw_paths[kind])
            fused[kind], attention_fused[kind] = optimize_tower(
                raw_paths[kind],
                dst,
                num_heads=arch.heads,
                hidden_size=arch.hidden_size,
                num_layers=arch.layers,
                kind=kind,
                model_type=model_type,
                strict=strict,
                external_data=external[kind],
            )
            note.append(", ".join(f"{k} {v}" for k, v in fused[kind].items() if v))
        if not keep_raw:  # the static int8 formulation quantizes the graph before fusion
            shutil.rmtree(raw_paths[kind].parent)
        fp32_paths[kind] = dst
    return _Optimized(fp32_paths=fp32_paths, fused=fused, attention_fused=attention_fused)


def _variant(
    b: _Build,
    precision: str,
    traced: _Traced,
    opt: _Optimized,
    refs: _References,
    variants: _Variants,
) -> dict[str, Path]:
    """Makes the `precision` variant of both towers (fp32: the optimized graphs)."""
    from cliprt.export import fp16 as fp16_mod
    from cliprt.export import int8 as int8_mod
    from cliprt.export.int8_embedding import quantize_token_embeddings
    from cliprt.export.ort_presave import presave_optimized

    st, staging, int8_options = b.st, b.staging, b.int8_options
    fp32_paths, raw_paths, external = opt.fp32_paths, traced.raw_paths, traced.external
    calibration = refs.calibration
    paths: dict[str, Path] = {}
    for kind in ("vision", "text"):
        if precision == "fp32":
            paths[kind] = fp32_paths[kind]
            continue
        dst = staging / f"{kind}.{precision}.onnx"
        with st.stage(f"{kind}: {precision}"):
            if precision == "fp16":
                fp16_mod.convert_fp16(fp32_paths[kind], dst, external_data=external[kind])
            else:
                int8_mod.quantize_int8(
                    fp32_paths[kind],
                    dst,
                    int8_options,
                    raw=raw_paths[kind],
                    calibration=None if calibration is None else calibration[kind],
                    external_data=external[kind],
                )
                if not external[kind]:
                    # The token-embedding table too (int8 rows): see int8_embedding.
                    variants.embedding_quant += quantize_token_embeddings(dst)
                    # Graph rewrites done once, not at every load (cold start).
                    presave_optimized(dst)
        paths[kind] = dst
    return paths


def _validate(
    b: _Build,
    precision: str,
    paths: dict[str, Path],
    probes: Probes,
    variants: _Variants,
) -> dict[str, Parity]:
    """Measures both towers of `precision` against the PyTorch probes and applies its gate.

    Raises:
        ParityError: a tower failed the gate.
    """
    from cliprt.export.validate import batch_drift, check_gate, measure

    st, gate_map, drift = b.st, b.gate_map, variants.drift
    parities: dict[str, Parity] = {}
    with st.stage(f"validate {precision}") as note:
        for kind in ("vision", "text"):
            parities[kind] = measure(paths[kind], kind, probes)
            p = parities[kind]
            note.append(f"{kind} max abs diff {p.max_abs_diff:.2e}, min cosine {p.min_cosine:.6f}")
        check_gate(precision, parities, gate_map[precision])
        if precision == "int8":
            drift[precision] = {k: batch_drift(paths[k], k, probes) for k in paths}
            note.append(
                "batch drift " + ", ".join(f"{k} {v:.1e}" for k, v in drift[precision].items())
            )
    return parities


def _record(
    b: _Build,
    precision: str,
    paths: dict[str, Path],
    parities: dict[str, Parity],
    opt: _Optimized,
    variants: _Variants,
) -> None:
    """Adds the manifest entries of both towers' `precision` variant."""
    from cliprt.export.onnx_graph import TEXT_INPUT, TEXT_OUTPUT, VISION_INPUT, VISION_OUTPUT

    io = {"vision": (VISION_INPUT, VISION_OUTPUT), "text": (TEXT_INPUT, TEXT_OUTPUT)}
    staging = b.staging
    for kind in ("vision", "text"):
        entry = file_entry(staging, paths[kind].name)
        variants.towers[kind][precision] = Variant(
            file=entry.file,
            sha256=entry.sha256,
            bytes=entry.bytes,
            opset=b.opset,
            input_name=io[kind][0],
            output_name=io[kind][1],
            fused_ops=opt.fused[kind],
            parity=parities[kind],
            data_files=tuple(
                file_entry(staging, name) for name in external_data_locations(paths[kind])
            ),
            attention_fused=opt.attention_fused[kind],
        )


def _manifest(
    b: _Build,
    refs: _References,
    variants: _Variants,
    *,
    family: str,
    label: str,
    facts: _Facts,
) -> Manifest:
    from cliprt.export import fp16 as fp16_mod

    staging, wanted, opset, int8_options = b.staging, b.wanted, b.opset, b.int8_options
    gate_map, gate_overrides, probes, drift = (
        b.gate_map,
        b.gate_overrides,
        refs.probes,
        variants.drift,
    )
    return Manifest(
        format_version=FORMAT_VERSION,
        cliprt_version=_cliprt_version(),
        source=label,
        tokenizer=file_entry(staging, TOKENIZER_FILE),
        preprocessor=file_entry(staging, facts.preprocessor_name),
        towers=variants.towers,
        family=family,
        embed_dim=facts.embed_dim,
        image_size=facts.image_size,
        context_length=facts.context_length,
        logit_scale=facts.logit_scale,
        logit_bias=facts.logit_bias,
        scoring=facts.scoring,
        text_padding=facts.text_padding,
        padding_side=facts.padding_side,
        bos_id=facts.bos_id,
        eos_id=facts.eos_id,
        pad_id=facts.pad_id,
        preprocessing=facts.preprocessing,
        arch=facts.arch,
        probes=refs.device_probes.to_dict(),
        export={
            # Tower outputs are the projected embeddings, not L2-normalised: the runtime
            # normalises (and keeps the norms available to whoever wants them).
            "normalized": False,
            **facts.export,
            "opset": opset,
            "optimizer": {
                "model_type": facts.optimizer_model_type,
                "opt_level": 0,
                "use_gpu": False,
            },
            "external_data_bytes": b.external_data_bytes,
            "fp16": {"keep_io_types": True, "op_block_list": list(fp16_mod._FP32_OPS)}
            if "fp16" in wanted
            else None,
            "int8": {**int8_options.to_dict(), "batch_drift": drift.get("int8")}
            if "int8" in wanted
            else None,
            "int8_embedding": [e.to_dict() for e in variants.embedding_quant]
            if "int8" in wanted
            else None,
            "gates": {
                p: {"max_abs_diff": g.max_abs_diff, "min_cosine": g.min_cosine}
                for p, g in gate_map.items()
                if p in wanted
            },
            "gate_overrides": gate_overrides,
            "probes": {"images": len(probes.pixel_values), "texts": len(probes.input_ids)},
            "tokenizer_parity": refs.tokenizer_check,
            "preprocessing_parity": refs.preprocessing_check,
            "timings_s": dict(b.st.timings),
            "versions": _versions(),
        },
    )


@dataclass(frozen=True)
class _Facts:
    """What the manifest records of a loaded Checkpoint, taken before it is freed."""

    preprocessor_name: str
    optimizer_model_type: str
    embed_dim: int
    image_size: int
    context_length: int
    logit_scale: float
    logit_bias: float
    scoring: str
    text_padding: str
    padding_side: str
    bos_id: int
    eos_id: int
    pad_id: int
    preprocessing: Preprocessing
    arch: dict[str, object]
    export: dict[str, object]


def _facts(ckpt: Checkpoint) -> _Facts:
    """What the manifest records of a loaded Checkpoint, taken before it is freed."""
    staging_name = Path(ckpt.preprocessor_json).name
    text_pooling = {
        "clip": "first eos_id in input_ids",
        "openclip": "first eos_id in input_ids (= open_clip's argmax: EOT has the top id)",
        "siglip": "last position (prompts padded to context_length)",
    }[ckpt.family]
    return _Facts(
        preprocessor_name=staging_name,
        optimizer_model_type=ckpt.optimizer_model_type,
        embed_dim=int(ckpt.embed_dim),
        image_size=int(ckpt.image_size),
        context_length=int(ckpt.context_length),
        logit_scale=float(ckpt.logit_scale),
        logit_bias=float(ckpt.logit_bias),
        scoring=ckpt.scoring,
        text_padding=ckpt.text_padding,
        padding_side=ckpt.padding_side,
        bos_id=int(ckpt.bos_id),
        eos_id=int(ckpt.eos_id),
        pad_id=int(ckpt.pad_id),
        preprocessing=ckpt.preprocessing,
        arch={
            "projection_dim": int(ckpt.embed_dim),
            "vision": ckpt.vision_arch.to_dict(),
            "text": ckpt.text_arch.to_dict(),
            "parameters": int(ckpt.n_params),
        },
        export={
            "text_pooling": text_pooling,
            "text_inputs": "input_ids only; "
            + (
                f"every prompt padded to {ckpt.context_length} with pad_id ({ckpt.padding_side})"
                if ckpt.text_padding == "max_length"
                else "right padding (any pad id) after the EOS"
            ),
            "exporter": "optimum-onnx export_pytorch -> torch.onnx.export(dynamo=False)"
            if ckpt.exporter == "optimum-clip"
            else "torch.onnx.export(dynamo=False)",
            "family_notes": {k: v for k, v in ckpt.notes.items()},
        },
    )


def _make_readable(folder: Path) -> None:
    # mkdtemp/mkstemp create 0700/0600 entries; a model folder is shared data, so give
    # it the permissions a plain mkdir/open would have had under the current umask.
    import os

    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def _cliprt_version() -> str:
    from cliprt import __version__

    return str(__version__)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "optimum-onnx", "onnx", "onnxruntime"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "?"
    return out
