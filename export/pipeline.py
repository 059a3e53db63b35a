"""export_model: the one pipeline every source goes through.

resolve SRC -> load (eager attention) -> torch -> ONNX per tower -> fuse -> fp32 /
fp16 / int8 variants -> validate each against the PyTorch tower (gates) -> manifest ->
atomic rename to OUT.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cliprt.errors import ExportError
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

if TYPE_CHECKING:
    from cliprt.export.int8 import Int8Options

TOKENIZER_FILE = "tokenizer.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
DEFAULT_OPSET = 17


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
    def stage(self, name: str):
        start = time.perf_counter()
        note: list[str] = []
        yield note
        seconds = time.perf_counter() - start
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
) -> Path:
    """Exports a CLIP checkpoint to a validated cliprt model folder.

    Args:
        source: a local HF CLIP checkpoint folder, a hub id, or random:ViT-B-32 /
            random:ViT-B-16 / random:ViT-L-14 / random:tiny.
        out: the model folder to create. Written beside, renamed in at the end.
        precisions: any of "fp32", "fp16", "int8" (iterable or comma-separated).
        opset: ONNX opset of the exported graphs.
        force: replace an existing `out`.
        gates: overrides of validate.DEFAULT_GATES, e.g. {"int8.min_cosine": 0.98};
            recorded in the manifest and reported through `progress`.
        int8: an int8.Int8Options (per channel, reduce_range, excluded nodes).
        progress: called with one line per finished stage (with its seconds).

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
            source, staging, work, st, wanted, opset, gate_map, gate_overrides, int8_options
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
) -> Manifest:
    from cliprt.export import fp16 as fp16_mod
    from cliprt.export import int8 as int8_mod
    from cliprt.export.onnx_graph import (
        TEXT_INPUT,
        TEXT_OUTPUT,
        VISION_INPUT,
        VISION_OUTPUT,
        export_tower,
    )
    from cliprt.export.optimize import optimize_tower
    from cliprt.export.source import resolve_source
    from cliprt.export.towers import load_towers
    from cliprt.export.validate import batch_drift, build_probes, check_gate, measure

    with st.stage("resolve source") as note:
        src = resolve_source(source, work)
        note.append(f"{src.kind} {src.folder}")

    with st.stage("load checkpoint") as note:
        tokenizer, processor = _load_tokenizer_and_processor(src.folder, source)
        bos_id, eos_id, pad_id = _special_ids(tokenizer, source)
        towers = load_towers(src.folder, eos_id=eos_id)
        config = towers.model.config
        vc, tc = config.vision_config, config.text_config
        n_params = sum(p.numel() for p in towers.model.parameters())
        note.append(f"{n_params / 1e6:.1f}M parameters")

    layers = {"vision": vc.num_hidden_layers, "text": tc.num_hidden_layers}
    io = {"vision": (VISION_INPUT, VISION_OUTPUT), "text": (TEXT_INPUT, TEXT_OUTPUT)}
    fused: dict[str, dict[str, int]] = {}
    fp32_paths: dict[str, Path] = {}
    raw_paths: dict[str, Path] = {}
    for kind, tower, cfg in (("vision", towers.vision, vc), ("text", towers.text, tc)):
        raw = work / f"{kind}.raw.onnx"
        with st.stage(f"{kind}: torch -> onnx"):
            export_tower(tower, kind, raw, opset=opset)
        # The optimized fp32 graph is the fp32 variant and the base of the others.
        dst = (staging if "fp32" in wanted else work) / f"{kind}.fp32.onnx"
        with st.stage(f"{kind}: optimize") as note:
            fused[kind] = optimize_tower(
                raw,
                dst,
                num_heads=cfg.num_attention_heads,
                hidden_size=cfg.hidden_size,
                num_layers=layers[kind],
                kind=kind,
            )
            note.append(", ".join(f"{k} {v}" for k, v in fused[kind].items() if v))
        fp32_paths[kind] = dst
        raw_paths[kind] = raw  # kept: the static int8 formulation quantizes before fusion

    with st.stage("reference embeddings (PyTorch)") as note:
        probes = build_probes(towers, processor, tokenizer, tc.max_position_embeddings)
        note.append(f"{len(probes.pixel_values)} images, {len(probes.input_ids)} texts")
    calibration = None
    if "int8" in wanted and int8_options.static:
        from cliprt.export.calibration import calibration_arrays

        with st.stage("int8 calibration inputs") as note:
            calibration = calibration_arrays(processor, tokenizer, tc.max_position_embeddings)
            note.append(", ".join(f"{k} {tuple(v.shape)}" for k, v in calibration.items()))
    logit_scale = float(math.exp(float(towers.model.logit_scale.detach())))
    del towers  # free the PyTorch weights before quantization (ViT-L is large)

    towers_out: dict[str, dict[str, Variant]] = {"vision": {}, "text": {}}
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
                    fp16_mod.convert_fp16(fp32_paths[kind], dst)
                else:
                    int8_mod.quantize_int8(
                        fp32_paths[kind],
                        dst,
                        int8_options,
                        raw=raw_paths[kind],
                        calibration=None if calibration is None else calibration[kind],
                    )
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
            )

    with st.stage("tokenizer and preprocessor files"):
        tok_src = src.folder / TOKENIZER_FILE
        if tok_src.is_file():
            shutil.copyfile(tok_src, staging / TOKENIZER_FILE)
        else:  # only vocab.json + merges.txt: the fast tokenizer converts them
            tokenizer.backend_tokenizer.save(str(staging / TOKENIZER_FILE))
        shutil.copyfile(src.folder / PREPROCESSOR_FILE, staging / PREPROCESSOR_FILE)
        preprocessing = _preprocessing(processor, source)

    return Manifest(
        format_version=FORMAT_VERSION,
        cliprt_version=_cliprt_version(),
        source=src.label,
        embed_dim=int(config.projection_dim),
        image_size=int(vc.image_size),
        context_length=int(tc.max_position_embeddings),
        logit_scale=logit_scale,
        bos_id=bos_id,
        eos_id=eos_id,
        pad_id=pad_id,
        tokenizer=file_entry(staging, TOKENIZER_FILE),
        preprocessor=file_entry(staging, PREPROCESSOR_FILE),
        preprocessing=preprocessing,
        towers=towers_out,
        arch={
            "projection_dim": int(config.projection_dim),
            "vision": {
                "layers": int(vc.num_hidden_layers),
                "hidden_size": int(vc.hidden_size),
                "heads": int(vc.num_attention_heads),
                "patch_size": int(vc.patch_size),
                "image_size": int(vc.image_size),
            },
            "text": {
                "layers": int(tc.num_hidden_layers),
                "hidden_size": int(tc.hidden_size),
                "heads": int(tc.num_attention_heads),
                "vocab_size": int(tc.vocab_size),
                "context_length": int(tc.max_position_embeddings),
            },
            "parameters": int(n_params),
        },
        export={
            # Tower outputs are the projected embeddings, not L2-normalised: the runtime
            # normalises (and keeps the norms available to whoever wants them).
            "normalized": False,
            "text_pooling": "first eos_id in input_ids",
            "text_inputs": "input_ids only; right padding (any pad id) after the EOS",
            "exporter": "optimum-onnx export_pytorch -> torch.onnx.export(dynamo=False)",
            "opset": opset,
            "optimizer": {"model_type": "clip", "opt_level": 0, "use_gpu": False},
            "fp16": {"keep_io_types": True, "op_block_list": list(fp16_mod._FP32_OPS)}
            if "fp16" in wanted
            else None,
            "int8": {**int8_options.to_dict(), "batch_drift": drift.get("int8")}
            if "int8" in wanted
            else None,
            "gates": {
                p: {"max_abs_diff": g.max_abs_diff, "min_cosine": g.min_cosine}
                for p, g in gate_map.items()
                if p in wanted
            },
            "gate_overrides": gate_overrides,
            "probes": {"images": len(probes.pixel_values), "texts": len(probes.input_ids)},
            "timings_s": dict(st.timings),
            "versions": _versions(),
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


def _load_tokenizer_and_processor(folder: Path, label: str) -> tuple[Any, Any]:
    from transformers import CLIPImageProcessor, CLIPTokenizerFast

    try:
        tokenizer = CLIPTokenizerFast.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as exc:
        raise ExportError(
            f"cannot load the tokenizer of {label!r}: {exc}; save a CLIP tokenizer next to "
            "the weights (CLIPTokenizerFast.save_pretrained)"
        ) from exc
    try:
        processor = CLIPImageProcessor.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as exc:
        raise ExportError(
            f"cannot load {PREPROCESSOR_FILE} of {label!r}: {exc}; save one with "
            "CLIPImageProcessor.save_pretrained"
        ) from exc
    return tokenizer, processor


def _special_ids(tokenizer: Any, label: str) -> tuple[int, int, int]:
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos is None or eos is None:
        raise ExportError(
            f"the tokenizer of {label!r} has no BOS/EOS token (bos={bos}, eos={eos}); "
            "a CLIP tokenizer has <|startoftext|> and <|endoftext|>"
        )
    pad = tokenizer.pad_token_id
    return int(bos), int(eos), int(eos if pad is None else pad)


def _preprocessing(processor: Any, label: str) -> Preprocessing:
    size, crop = processor.size or {}, processor.crop_size or {}
    if "shortest_edge" not in size:
        raise ExportError(
            f"{PREPROCESSOR_FILE} of {label!r} resizes to {size}; cliprt supports CLIP's "
            "shortest-edge resize ({'shortest_edge': N}) only"
        )
    return Preprocessing(
        resize_shortest_edge=int(size["shortest_edge"]),
        crop_height=int(crop.get("height", size["shortest_edge"])),
        crop_width=int(crop.get("width", size["shortest_edge"])),
        resample=int(processor.resample),
        do_resize=bool(processor.do_resize),
        do_center_crop=bool(processor.do_center_crop),
        do_rescale=bool(processor.do_rescale),
        rescale_factor=float(processor.rescale_factor),
        do_normalize=bool(processor.do_normalize),
        image_mean=tuple(float(x) for x in processor.image_mean),
        image_std=tuple(float(x) for x in processor.image_std),
        do_convert_rgb=bool(getattr(processor, "do_convert_rgb", True)),
    )


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
