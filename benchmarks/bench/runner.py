"""One benchmark run: resolve the model, measure engine and reference on the same inputs,
collect every figure into one result dict (see report.py for its shape).

torch is imported only when a reference is asked for (reference.py is imported lazily).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cliprt.bench import env as envmod
from cliprt.bench.inputs import BenchInputs, make_inputs, token_counter
from cliprt.bench.parity import compare
from cliprt.bench.progress import BenchProgress
from cliprt.bench.timing import Timing, measure_interleaved
from cliprt.errors import CliprtError, InputError, ModelFolderError
from cliprt.manifest import MANIFEST_NAME, Manifest, read_manifest

SCHEMA = "cliprt-bench/1"
BENCH_TOWERS = ("image", "text")
# bench says image/text (what a user embeds); the manifest says vision/text.
MANIFEST_TOWER = {"image": "vision", "text": "text"}
RANDOM_PREFIX = "random:"

# Let the thread pools of the side that just ran go idle before the other side is timed
# (ORT's spinning workers, OpenMP's spin-wait), so neither pays for the other's tail.
_SETTLE_S = 0.2
# Rows whose timed calls add up to less than this get more repeats (up to 5x): cheap
# stages (tokenization, small batches) are the noisiest on a shared machine.
_MIN_TIME_S = 1.0

# How idle worker threads wait, on both sides alike: (onnxruntime spinning,
# OMP_WAIT_POLICY for torch's OpenMP pool). "passive" is the default because a spinning
# OpenMP pool on a busy machine collapses (a 1 ms call taking 400 ms was seen here with
# libgomp's default policy and 2 threads at load 6 on 2 cores); "active" suits a
# dedicated box; "default" leaves both libraries as they come.
WAIT_POLICIES: dict[str, tuple[bool, str | None]] = {
    "passive": (False, "PASSIVE"),
    "active": (True, "ACTIVE"),
    "default": (True, None),
}


@dataclass
class BenchConfig:
    """What to measure. Lists are in the order given on the command line."""

    model: str
    towers: tuple[str, ...] = BENCH_TOWERS
    precisions: tuple[str, ...] = ("fp32", "int8")
    devices: tuple[str, ...] = ("cpu",)
    batches: tuple[int, ...] = (1, 8, 32)
    threads: int = 1
    seq_len: int = 16
    repeats: int = 20
    warmup: int = 3
    cold_repeats: int = 3
    wait_policy: str = "passive"
    reference: str | None = None
    no_reference: bool = False
    memory: bool = True
    # What a user would run instead, timed in the same interleaved calls (baselines.py).
    baselines: tuple[str, ...] = ()
    argv: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class ResolvedModel:
    folder: Path
    manifest: Manifest
    reference: str | None  # HF checkpoint folder or hub id, None without a reference
    reference_note: str
    export: dict[str, Any] | None


class _Workdir:
    """A temporary folder for exported models, rebuilt checkpoints and input files."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="cliprt-bench-")
        self.path = Path(self._tmp.name)

    def cleanup(self) -> None:
        self._tmp.cleanup()


# ---------------------------------------------------------------- model resolution


def _export(source: str, out: Path, precisions: Sequence[str], progress: BenchProgress) -> dict:
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
    return {"source": source, "seconds": seconds, "precisions": list(precisions)}


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
        from cliprt.runtime.model import shipped_folder

        # A shipped model's short name (e.g. "shapes"), as cliprt.load takes it.
        path = shipped_folder(src) or path
    if src.startswith(RANDOM_PREFIX):
        ckpt = _rebuild_random(src, work, progress)
        folder = work / "model"
        export = _export(ckpt, folder, export_precisions, progress)
        export["source"] = src
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


# ---------------------------------------------------------------- checks


def check_config(cfg: BenchConfig) -> None:
    """Raises InputError for a config no run could satisfy."""
    bad = [t for t in cfg.towers if t not in BENCH_TOWERS]
    if bad or not cfg.towers:
        raise InputError(f"--towers: unknown {bad or 'empty'}; use image, text or image,text")
    bad = [p for p in cfg.precisions if p not in ("fp32", "fp16", "int8", "bf16")]
    if bad or not cfg.precisions:
        raise InputError(f"--precision: unknown {bad or 'empty'}; use any of fp32,fp16,int8,bf16")
    from cliprt.bench.baselines import BASELINES

    bad = [b for b in cfg.baselines if b not in BASELINES]
    if bad:
        raise InputError(f"--baselines: unknown {bad}; use any of {','.join(BASELINES)}")
    bad = [d for d in cfg.devices if d not in ("cpu", "cuda")]
    if bad or not cfg.devices:
        raise InputError(f"--device: unknown {bad or 'empty'}; use cpu, cuda or cpu,cuda")
    if not cfg.batches or any(b < 1 for b in cfg.batches):
        raise InputError(f"--batch: sizes must be >= 1, got {list(cfg.batches)}")
    if cfg.threads < 1:
        raise InputError(f"--threads must be >= 1, got {cfg.threads}")
    if cfg.repeats < 1 or cfg.warmup < 0 or cfg.cold_repeats < 0:
        raise InputError(
            f"--repeats must be >= 1 and --warmup, --cold-repeats >= 0 "
            f"(got {cfg.repeats}, {cfg.warmup}, {cfg.cold_repeats})"
        )
    if cfg.wait_policy not in WAIT_POLICIES:
        raise InputError(
            f"--wait-policy {cfg.wait_policy!r}: use one of {', '.join(WAIT_POLICIES)}"
        )
    if cfg.no_reference and cfg.reference:
        raise InputError("--reference and --no-reference contradict each other; give one")


def _device_skip_reason(device: str, want_ref: bool) -> str | None:
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


# ---------------------------------------------------------------- measurement


class _Bench:
    def __init__(self, cfg: BenchConfig, model: ResolvedModel, inputs: BenchInputs, progress):
        self.cfg = cfg
        self.model = model
        self.inputs = inputs
        self.progress = progress
        self.rows: list[dict[str, Any]] = []
        self.parity: list[dict[str, Any]] = []
        self.skipped: list[dict[str, str]] = []
        self.gpu_memory: list[dict[str, Any]] = []
        self.token_ids_equal: bool | None = None
        self.baseline_rows: list[dict[str, Any]] = []
        self.baselines: dict[str, Any] = {}

    def _time(self, fns: dict[str, Any], items: int, syncs: dict[str, Any] | None = None):
        # Engine and reference calls alternate (see measure_interleaved): on a shared
        # machine a spell of load then hits both sides, not whichever ran at the time.
        time.sleep(_SETTLE_S)
        return measure_interleaved(
            fns,
            items=items,
            repeats=self.cfg.repeats,
            warmup=self.cfg.warmup,
            syncs=syncs,
            min_time_s=_MIN_TIME_S,
        )

    def _row(self, stage, tower, precision, device, batch, eng: Timing, ref: Timing | None, **kw):
        row: dict[str, Any] = {
            "stage": stage,
            "tower": tower,
            "precision": precision,
            "device": device,
            "batch": batch,
            "engine": eng.summary(),
            "reference": ref.summary() if ref is not None else None,
            "reference_precision": kw.pop("reference_precision", None) if ref is not None else None,
            **kw,
        }
        if ref is not None:
            row["ratio_p50"] = eng.p50_ms / ref.p50_ms
            row["speedup"] = ref.p50_ms / eng.p50_ms
        else:
            row["ratio_p50"] = row["speedup"] = None
        self.rows.append(row)
        msg = f"{stage:10s} {tower:5s} {precision or '-':4s} {device} b{batch:<3d} engine p50 {eng.p50_ms:8.2f} ms"
        if ref is not None:
            msg += f" | reference {ref.p50_ms:8.2f} ms | x{row['speedup']:.2f}"
        self.progress.step(msg)

    def run_device(self, device: str) -> None:
        cfg = self.cfg
        refs: dict[str, Any] = {}
        if self.model.reference is not None:
            from cliprt.bench.reference import Reference

            ref_precisions = ("fp32", "fp16") if device == "cuda" else ("fp32",)
            for rp in ref_precisions:
                self.progress.say(f"loading reference {rp} on {device} ...")
                try:
                    refs[rp] = Reference(
                        self.model.reference, device=device, precision=rp, threads=cfg.threads
                    )
                except (OSError, ValueError) as exc:  # transformers' "not found / offline"
                    raise InputError(
                        f"the reference checkpoint {self.model.reference!r} cannot be loaded "
                        f"({type(exc).__name__}: {str(exc)[:300]}); pass --reference "
                        "CHECKPOINT (a local HF CLIP folder) or --no-reference"
                    ) from exc
        from cliprt.bench.engine import Engine

        engines: dict[str, Engine] = {}
        spinning = WAIT_POLICIES[cfg.wait_policy][0]
        for p in cfg.precisions:
            if device == "cuda" and p == "bf16":
                self.skipped.append(
                    {"what": "bf16 on cuda", "reason": "bf16 is a CPU path; CUDA runs fp16"}
                )
                continue
            if device == "cuda" and p == "int8":
                self.skipped.append(
                    {
                        "what": "int8 on cuda",
                        "reason": "onnxruntime's CUDA execution provider has no int8 kernels "
                        "for dynamically quantized towers",
                    }
                )
                continue
            self.progress.say(f"loading engine {p} on {device} ...")
            engines[p] = Engine(
                self.model.folder,
                precision=p,
                device=device,
                threads=cfg.threads,
                spinning=spinning,
            )
        self.baselines = {}
        if device == "cpu" and cfg.baselines:
            from cliprt.bench.baselines import load_baselines

            self.progress.say(f"loading baselines {', '.join(cfg.baselines)} ...")
            self.baselines, skipped = load_baselines(
                cfg.baselines,
                folder=self.model.folder,
                manifest=self.model.manifest,
                checkpoint=self.model.reference,
                threads=cfg.threads,
            )
            self.skipped += skipped
        # The text tower timed at the reference tokenizer's shape must be the engine's too.
        any_engine = next(iter(engines.values()))
        ids = any_engine.tokenize(self.inputs.text_batch(1))
        if ids.shape[1] != self.inputs.seq_len:
            raise CliprtError(
                f"prompts tokenized to {ids.shape[1]} tokens, not {self.inputs.seq_len}"
            )

        for tower in cfg.towers:
            self._stages(tower, device, any_engine, refs.get("fp32"))
            for batch in cfg.batches:
                self._tower(tower, device, batch, engines, refs)
            for batch in cfg.batches:
                self._e2e(tower, device, batch, engines, refs)
            self._parity(tower, device, engines, refs)
        for r in refs.values():
            gm = r.gpu_memory()
            if gm is not None:
                self.gpu_memory.append({"side": "reference", "precision": r.precision, **gm})

    # preprocessing / tokenization: independent of the engine's precision
    def _stages(self, tower: str, device: str, eng, ref) -> None:
        stage = "preprocess" if tower == "image" else "tokenize"
        for batch in self.cfg.batches:
            if tower == "image":
                data: list[Any] = self.inputs.image_batch(batch)
                fns = {"engine": lambda d=data: eng.preprocess(d)}
                if ref is not None:
                    fns["reference"] = lambda d=data: ref.preprocess(d)
            else:
                data = self.inputs.text_batch(batch)
                fns = {"engine": lambda d=data: eng.tokenize(d)}
                if ref is not None:
                    fns["reference"] = lambda d=data: ref.tokenize(d)
            t = self._time(fns, batch)
            self._row(stage, tower, None, device, batch, t["engine"], t.get("reference"))

    def _ref_for(self, precision: str, refs: dict[str, Any]) -> str | None:
        # fp16 engine rows compare with the fp16 reference where there is one (CUDA).
        if precision in refs:
            return precision
        return "fp32" if "fp32" in refs else None

    def _emit(self, stage, tower, device, batch, engines, refs, t: dict[str, Timing]) -> None:
        for p in engines:
            rp = self._ref_for(p, refs)
            ref_t = t.get(f"reference {rp}") if rp else None
            self._row(
                stage, tower, p, device, batch, t[f"engine {p}"], ref_t, reference_precision=rp
            )

    def _tower(self, tower, device, batch, engines, refs) -> None:
        # One shared input per batch (cliprt's pixel values / token ids, the same numbers
        # for both sides), already on the device, so only the tower is timed.
        any_engine = next(iter(engines.values()))
        if tower == "image":
            host = any_engine.preprocess(self.inputs.image_batch(batch))
        else:
            host = any_engine.tokenize(self.inputs.text_batch(batch))
        fns: dict[str, Any] = {}
        syncs: dict[str, Any] = {}
        for rp, ref in refs.items():
            name = f"reference {rp}"
            if tower == "image":
                x = ref.to_device(_torch_from_numpy(host))
                fns[name] = lambda x=x, r=ref: r.image_tower(x)
            else:
                x = ref.tokens_to_device(_torch_tokens(host))
                fns[name] = lambda x=x, r=ref: r.text_tower(x)
            syncs[name] = ref.sync_fn()
        for p, eng in engines.items():
            name = f"engine {p}"
            h = eng.to_device(host)
            if tower == "image":
                fns[name] = lambda h=h, e=eng: e.image_tower(h)
            else:
                fns[name] = lambda h=h, e=eng: e.text_tower(h)
            syncs[name] = eng.sync_fn()
        for b, base in self.baselines.items():
            fns[f"baseline {b}"] = base.tower(tower, host)
        t = self._time(fns, batch, syncs)
        self._emit("tower", tower, device, batch, engines, refs, t)
        for b in self.baselines:
            timing = t[f"baseline {b}"]
            self.baseline_rows.append(
                {
                    "tower": tower,
                    "device": device,
                    "batch": batch,
                    "baseline": b,
                    "timing": timing.summary(),
                    # > 1: cliprt at that precision is faster than the baseline.
                    "speedup": {p: timing.p50_ms / t[f"engine {p}"].p50_ms for p in engines},
                }
            )
            self.progress.say(
                f"baseline {b:14s} {tower:5s} b{batch:<3d} p50 {timing.p50_ms:8.2f} ms"
            )

    def _e2e(self, tower, device, batch, engines, refs) -> None:
        image = tower == "image"
        items: list[Any] = self.inputs.file_batch(batch) if image else self.inputs.text_batch(batch)
        fns: dict[str, Any] = {}
        syncs: dict[str, Any] = {}
        for rp, ref in refs.items():
            name = f"reference {rp}"
            if image:
                fns[name] = lambda i=items, r=ref: r.encode_files(i)
            else:
                fns[name] = lambda i=items, r=ref: r.encode_texts(i)
            syncs[name] = ref.sync_fn()
        for p, eng in engines.items():
            if image:
                fns[f"engine {p}"] = lambda i=items, e=eng: e.encode_files(i)
            else:
                fns[f"engine {p}"] = lambda i=items, e=eng: e.encode_texts(i)
        self._emit("e2e", tower, device, batch, engines, refs, self._time(fns, batch, syncs))

    def _parity(self, tower, device, engines, refs) -> None:
        if not refs:
            return
        n = max(self.cfg.batches)
        if tower == "image":
            host = next(iter(engines.values())).preprocess(self.inputs.image_batch(n))
            files = self.inputs.file_batch(n)
        else:
            host = next(iter(engines.values())).tokenize(self.inputs.text_batch(n))
            texts = self.inputs.text_batch(n)
        ref_out: dict[str, dict[str, np.ndarray]] = {}
        if tower == "text":
            ref_ids = next(iter(refs.values())).tokenize(texts)["input_ids"].numpy()
            self.token_ids_equal = bool(
                self.token_ids_equal is not False
                and ref_ids.shape == host.shape
                and (ref_ids == host).all()
            )
        for rp, ref in refs.items():
            if tower == "image":
                t = ref.to_numpy(ref.image_tower(ref.to_device(_torch_from_numpy(host))))
                e = ref.encode_files(files)
            else:
                t = ref.to_numpy(ref.text_tower(ref.tokens_to_device(_torch_tokens(host))))
                e = ref.encode_texts(texts)
            ref_out[rp] = {"tower": t, "e2e": e}
        for p, eng in engines.items():
            rp = self._ref_for(p, refs)
            if rp is None:  # no reference to compare with
                continue
            if tower == "image":
                et = eng.image_tower(eng.to_device(host))
                ee = eng.encode_files(files)
            else:
                et = eng.text_tower(eng.to_device(host))
                ee = eng.encode_texts(texts)
            for kind, emb in (("tower", eng.to_numpy(et)), ("e2e", ee)):
                self.parity.append(
                    {
                        "tower": tower,
                        "precision": p,
                        "device": device,
                        "kind": kind,
                        "reference_precision": rp,
                        **compare(np.asarray(emb), ref_out[rp][kind]),
                    }
                )
            self.progress.say(
                f"parity {tower} {p} {device}: min cosine tower "
                f"{self.parity[-2]['min_cosine']:.6f}, end to end {self.parity[-1]['min_cosine']:.6f}"
            )


def _torch_from_numpy(x: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x))


def _torch_tokens(ids: np.ndarray) -> dict[str, Any]:
    import torch

    t = torch.from_numpy(np.ascontiguousarray(ids.astype(np.int64)))
    # All prompts have the same length (see inputs.make_texts): the mask is all ones.
    return {"input_ids": t, "attention_mask": torch.ones_like(t)}


# ---------------------------------------------------------------- memory / sizes


def _sizes(model: ResolvedModel) -> dict[str, Any]:
    m = model.manifest
    towers = {t: {p: v.bytes for p, v in variants.items()} for t, variants in m.towers.items()}
    totals = {
        p: sum(m.towers[t][p].bytes for t in m.towers if p in m.towers[t])
        for p in ("fp32", "fp16", "int8")
        if any(p in m.towers[t] for t in m.towers)
    }
    ref_bytes = None
    if model.reference is not None:
        from cliprt.bench.reference import checkpoint_bytes

        ref_bytes = checkpoint_bytes(model.reference)
    return {
        "engine_tower_bytes": towers,
        "engine_total_bytes": totals,
        "reference_checkpoint_bytes": ref_bytes,
    }


def _memory(
    cfg: BenchConfig,
    model: ResolvedModel,
    inputs: BenchInputs,
    work: Path,
    progress,
    devices: Sequence[str],
) -> list[dict[str, Any]]:
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
    out: list[dict[str, Any]] = []
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
                spinning, omp = WAIT_POLICIES[cfg.wait_policy]
                r = probe(
                    side,
                    model=path,
                    precision=prec,
                    device=device,
                    threads=cfg.threads,
                    inputs_json=str(spec),
                    spinning=spinning,
                    omp_wait_policy=omp,
                )
                r["repeat"] = i
                r["batch"] = n
                out.append(r)
                progress.say(
                    f"  cold start image {r['cold_start_image_ms']:.0f} ms, peak RSS "
                    f"{r['peak_rss_bytes'] / 2**20:.0f} MiB"
                )
    return out


# ---------------------------------------------------------------- entry


def run(cfg: BenchConfig, *, progress: BenchProgress | None = None) -> dict[str, Any]:
    """Runs the benchmark described by `cfg` and returns every figure (see report.py).

    Raises:
        InputError: bad arguments or an unusable MODEL.
        CliprtError: export, load or measurement failures from cliprt.
    """
    check_config(cfg)
    progress = progress or BenchProgress()
    # Before anything imports torch (the exporter does): libgomp reads it once.
    omp_policy = WAIT_POLICIES[cfg.wait_policy][1]
    torch_was_loaded = "torch" in sys.modules
    if omp_policy:
        os.environ["OMP_WAIT_POLICY"] = omp_policy
    work = _Workdir()
    try:
        t_start = time.perf_counter()
        env = envmod.environment(threads=cfg.threads, wait_policy=cfg.wait_policy)
        env["torch_loaded_before_policy"] = torch_was_loaded
        for line in envmod.header_lines(env):
            progress.say(line)
        model = resolve_target(cfg, work.path, progress)
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
        inputs = make_inputs(
            work.path / "inputs",
            n=max(cfg.batches),
            seq_len=cfg.seq_len,
            count_tokens=token_counter(model.folder / model.manifest.tokenizer.file),
        )
        if cfg.seq_len > model.manifest.context_length:
            raise InputError(
                f"--seq-len {cfg.seq_len} exceeds the model's context length "
                f"{model.manifest.context_length}"
            )
        bench = _Bench(cfg, model, inputs, progress)
        devices = []
        for device in cfg.devices:
            reason = _device_skip_reason(device, model.reference is not None)
            if reason:
                progress.say(f"skipping {device}: {reason}")
                bench.skipped.append({"what": f"device {device}", "reason": reason})
            else:
                devices.append(device)
        per_device = len(cfg.towers) * len(cfg.batches) * (1 + 2 * len(cfg.precisions))
        progress.total = per_device * len(devices)
        for device in devices:
            bench.run_device(device)
        memory = []
        if cfg.memory and cfg.cold_repeats > 0:
            memory = _memory(cfg, model, inputs, work.path, progress, devices)
        if "fp16" in cfg.precisions and "cpu" in devices:
            bench.skipped.append(
                {
                    "what": "fp16 on cpu",
                    "reason": "measured as asked, but fp16 is meant for CUDA: on the CPU "
                    "execution provider it is slower than fp32",
                }
            )
        if "cuda" not in devices:
            bench.skipped.append(
                {
                    "what": "GPU memory, CUDA IO binding, fp16 reference",
                    "reason": "no CUDA run in this benchmark",
                }
            )
        if model.reference is None:
            bench.skipped.append({"what": "reference", "reason": "--no-reference"})
        env["load_average_end"] = envmod.load_average()
        notes = []
        busy = max((env["load_average_start"] or [0])[0], (env["load_average_end"] or [0])[0])
        if busy > env["cpu"]["usable_cores"]:
            notes.append(
                f"the machine was busy (load average up to {busy:.1f} on "
                f"{env['cpu']['usable_cores']} cores): other work shared the cores, so "
                "absolute times are pessimistic and noisy; ratios are measured side by side"
            )
        return {
            "schema": SCHEMA,
            "argv": list(cfg.argv),
            "config": asdict(cfg),
            "env": env,
            "model": {
                "arg": cfg.model,
                "folder": str(model.folder),
                # random:ARCH is exported from a temporary folder: name the arch instead.
                "source": (model.export or {}).get("source") or model.manifest.source,
                "embed_dim": model.manifest.embed_dim,
                "image_size": model.manifest.image_size,
                "context_length": model.manifest.context_length,
                "arch": model.manifest.arch,
                "reference": model.reference,
                "reference_note": model.reference_note,
                "export": model.export,
                "manifest_parity": {
                    t: {p: asdict(v.parity) if v.parity else None for p, v in vs.items()}
                    for t, vs in model.manifest.towers.items()
                },
                **_sizes(model),
            },
            "inputs": {
                "images": [
                    {
                        "file": f.name,
                        "width": im.width,
                        "height": im.height,
                        "bytes": f.stat().st_size,
                    }
                    for f, im in zip(inputs.image_files, inputs.images, strict=True)
                ],
                "texts": list(inputs.texts),
                "seq_len": inputs.seq_len,
            },
            "rows": bench.rows,
            "parity": bench.parity,
            "baselines": bench.baseline_rows,
            "memory": memory,
            "gpu_memory_reference": bench.gpu_memory,
            "token_ids_equal": bench.token_ids_equal,
            "skipped": bench.skipped,
            "notes": notes,
            "devices_run": devices,
            "torch_imported": "torch" in sys.modules,
            "wall_s": time.perf_counter() - t_start,
        }
    finally:
        work.cleanup()
