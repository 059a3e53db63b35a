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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cliprt.errors import ExportError
from cliprt.export.memory import release_memory
from cliprt.manifest import (
    FORMAT_VERSION,
    PRECISIONS,
    Manifest,
    Parity,
    Variant,
    file_entry,
    write_manifest,
)
from cliprt.runtime.onnx_external import external_data_locations

if TYPE_CHECKING:
    from cliprt.export.int8 import Int8Options

TOKENIZER_FILE = "tokenizer.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
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
    gates: Mapping[str, Any] | None = None,
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
            source,
            staging,
            work,
            st,
            wanted,
            opset,
            gate_map,
            gate_overrides,
            int8_options,
            external_data_bytes,
        )
        shutil.rmtree(work)
        write_manifest(staging, manifest)
        _make_readable(staging)
        with st.stage("publish"):
            publish(staging, out, force=force)
    return out


def _build(
    source: str,
    staging: Path,
    work: Path,
    st: _Stages,
    wanted: tuple[str, ...],
    opset: int,
    gate_map: dict[str, Any],
    gate_overrides: dict[str, Any],
    int8_options: Any,
    external_data_bytes: int,
) -> Manifest:
    from cliprt.export import fp16 as fp16_mod
    from cliprt.export import int8 as int8_mod
    from cliprt.export.device_probes import record_probes
    from cliprt.export.external_data import externalize
    from cliprt.export.families import family_module
    from cliprt.export.int8_embedding import quantize_token_embeddings
    from cliprt.export.onnx_graph import (
        TEXT_INPUT,
        TEXT_OUTPUT,
        VISION_INPUT,
        VISION_OUTPUT,
        export_tower,
        onnx_bytes,
    )
    from cliprt.export.optimize import optimize_tower
    from cliprt.export.source import resolve_source
    from cliprt.export.validate import (
        batch_drift,
        build_probes,
        check_gate,
        check_preprocessing,
        check_tokenizer,
        measure,
    )

    with st.stage("resolve source") as note:
        src = resolve_source(source, work)
        note.append(f"{src.family}, {src.kind} {src.folder}")

    with st.stage("load checkpoint") as note:
        ckpt = family_module(src.family).load(src.folder, source, work)
        note.append(f"{ckpt.n_params / 1e6:.1f}M parameters")

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
    keep_raw = "int8" in wanted and int8_options.static and int8_options.graph == "raw"
    if "int8" in wanted and int8_options.static:
        from cliprt.export.calibration import checkpoint_calibration_arrays

        with st.stage("int8 calibration inputs") as note:
            calibration = checkpoint_calibration_arrays(ckpt)
            note.append(", ".join(f"{k} {tuple(v.shape)}" for k, v in calibration.items()))

    io = {"vision": (VISION_INPUT, VISION_OUTPUT), "text": (TEXT_INPUT, TEXT_OUTPUT)}
    external: dict[str, bool] = {}
    raw_paths: dict[str, Path] = {}
    # A large checkpoint (weights over the external-data threshold) is loaded again for
    # each tower's trace: its weights are mapped from the checkpoint file, and the
    # pages the reference embeddings read (both towers) stay resident as long as any
    # tensor of the mapping lives; a fresh load maps them again and the trace reads
    # only its own tower's. The trace of a ViT-H text tower then no longer sits on top
    # of the vision tower's 2.5 GB.
    reload_per_tower = 4 * ckpt.n_params > external_data_bytes
    for kind in ("vision", "text"):
        if reload_per_tower:
            del ckpt
            release_memory()
            (work / f"reload-{kind}").mkdir()
            ckpt = family_module(src.family).load(src.folder, source, work / f"reload-{kind}")
        tower = ckpt.vision if kind == "vision" else ckpt.text
        raw_dir = work / f"{kind}-raw"
        raw_dir.mkdir()
        raw_paths[kind] = raw_dir / f"{kind}.raw.onnx"
        with st.stage(f"{kind}: torch -> onnx") as note:
            export_tower(
                tower, kind, raw_paths[kind], opset=opset, exporter=ckpt.exporter, ckpt=ckpt
            )
            size = onnx_bytes(raw_dir)
            # Past the threshold (2 GB protobuf limit by default) the tower's weights go
            # to one external data file beside its .onnx, listed in the manifest.
            external[kind] = size > external_data_bytes
            note.append(f"{size / 1e6:.0f} MB" + (", external data" if external[kind] else ""))

    arches = {"vision": ckpt.vision_arch, "text": ckpt.text_arch}
    strict, model_type = ckpt.strict_fusion, ckpt.optimizer_model_type
    family, label = ckpt.family, src.label
    manifest_facts = _facts(ckpt)
    del ckpt, tower
    release_memory()

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

    towers_out: dict[str, dict[str, Variant]] = {"vision": {}, "text": {}}
    embedding_quant: list = []
    drift: dict[str, dict[str, float]] = {}
    for precision in wanted:
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
                        embedding_quant += quantize_token_embeddings(dst)
            paths[kind] = dst
        parities: dict[str, Parity] = {}
        with st.stage(f"validate {precision}") as note:
            for kind in ("vision", "text"):
                parities[kind] = measure(paths[kind], kind, probes)
                p = parities[kind]
                note.append(
                    f"{kind} max abs diff {p.max_abs_diff:.2e}, min cosine {p.min_cosine:.6f}"
                )
            check_gate(precision, parities, gate_map[precision])
            if precision == "int8":
                drift[precision] = {k: batch_drift(paths[k], k, probes) for k in paths}
                note.append(
                    "batch drift " + ", ".join(f"{k} {v:.1e}" for k, v in drift[precision].items())
                )
        for kind in ("vision", "text"):
            entry = file_entry(staging, paths[kind].name)
            towers_out[kind][precision] = Variant(
                file=entry.file,
                sha256=entry.sha256,
                bytes=entry.bytes,
                opset=opset,
                input_name=io[kind][0],
                output_name=io[kind][1],
                fused_ops=fused[kind],
                parity=parities[kind],
                data_files=tuple(
                    file_entry(staging, name) for name in external_data_locations(paths[kind])
                ),
                attention_fused=attention_fused[kind],
            )

    preprocessor_name = manifest_facts.pop("preprocessor_name")
    return Manifest(
        format_version=FORMAT_VERSION,
        cliprt_version=_cliprt_version(),
        source=label,
        tokenizer=file_entry(staging, TOKENIZER_FILE),
        preprocessor=file_entry(staging, preprocessor_name),
        towers=towers_out,
        family=family,
        **manifest_facts["manifest"],
        arch=manifest_facts["arch"],
        probes=device_probes.to_dict(),
        export={
            # Tower outputs are the projected embeddings, not L2-normalised: the runtime
            # normalises (and keeps the norms available to whoever wants them).
            "normalized": False,
            **manifest_facts["export"],
            "opset": opset,
            "optimizer": {
                "model_type": manifest_facts["optimizer_model_type"],
                "opt_level": 0,
                "use_gpu": False,
            },
            "external_data_bytes": external_data_bytes,
            "fp16": {"keep_io_types": True, "op_block_list": list(fp16_mod._FP32_OPS)}
            if "fp16" in wanted
            else None,
            "int8": {**int8_options.to_dict(), "batch_drift": drift.get("int8")}
            if "int8" in wanted
            else None,
            "int8_embedding": [e.to_dict() for e in embedding_quant] if "int8" in wanted else None,
            "gates": {
                p: {"max_abs_diff": g.max_abs_diff, "min_cosine": g.min_cosine}
                for p, g in gate_map.items()
                if p in wanted
            },
            "gate_overrides": gate_overrides,
            "probes": {"images": len(probes.pixel_values), "texts": len(probes.input_ids)},
            "tokenizer_parity": tokenizer_check,
            "preprocessing_parity": preprocessing_check,
            "timings_s": dict(st.timings),
            "versions": _versions(),
        },
    )


def _facts(ckpt: Any) -> dict[str, Any]:
    """What the manifest records of a loaded Checkpoint, taken before it is freed."""
    staging_name = Path(ckpt.preprocessor_json).name
    text_pooling = {
        "clip": "first eos_id in input_ids",
        "openclip": "first eos_id in input_ids (= open_clip's argmax: EOT has the top id)",
        "siglip": "last position (prompts padded to context_length)",
    }[ckpt.family]
    return {
        "preprocessor_name": staging_name,
        "optimizer_model_type": ckpt.optimizer_model_type,
        "manifest": {
            "embed_dim": int(ckpt.embed_dim),
            "image_size": int(ckpt.image_size),
            "context_length": int(ckpt.context_length),
            "logit_scale": float(ckpt.logit_scale),
            "logit_bias": float(ckpt.logit_bias),
            "scoring": ckpt.scoring,
            "text_padding": ckpt.text_padding,
            "padding_side": ckpt.padding_side,
            "bos_id": int(ckpt.bos_id),
            "eos_id": int(ckpt.eos_id),
            "pad_id": int(ckpt.pad_id),
            "preprocessing": ckpt.preprocessing,
        },
        "arch": {
            "projection_dim": int(ckpt.embed_dim),
            "vision": ckpt.vision_arch.to_dict(),
            "text": ckpt.text_arch.to_dict(),
            "parameters": int(ckpt.n_params),
        },
        "export": {
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
    }


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
