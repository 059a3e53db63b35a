"""The measurement loop: per device, tower and batch, the engine at every precision, the
PyTorch reference and the baselines, timed in the same interleaved calls; then parity on
the same inputs. Everything lands in a Measurements (result.py).

torch is imported only when a reference is asked for (reference.py is imported lazily).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cliprt.bench.config import BenchConfig
from cliprt.bench.inputs import BenchInputs
from cliprt.bench.parity import compare
from cliprt.bench.progress import BenchProgress
from cliprt.bench.resolve import ResolvedModel
from cliprt.bench.result import BaselineRow, Measurements, ParityRow, Row, Skipped
from cliprt.bench.timing import Timing, measure_interleaved
from cliprt.errors import CliprtError, InputError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from cliprt.bench.baselines import Baseline
    from cliprt.bench.engine import Engine
    from cliprt.bench.reference import Reference

# Let the thread pools of the side that just ran go idle before the other side is timed
# (ORT's spinning workers, OpenMP's spin-wait), so neither pays for the other's tail.
_SETTLE_S = 0.2
# Rows whose timed calls add up to less than this get more repeats (up to 5x): cheap
# stages (tokenization, small batches) are the noisiest on a shared machine.
_MIN_TIME_S = 1.0

Call = Callable[[], object]
Sync = Callable[[], None] | None


class Measurement:
    """Measures one resolved model on the devices it is given (run_device per device)."""

    def __init__(
        self,
        cfg: BenchConfig,
        model: ResolvedModel,
        inputs: BenchInputs,
        progress: BenchProgress,
    ) -> None:
        self.cfg = cfg
        self.model = model
        self.inputs = inputs
        self.progress = progress
        self.out = Measurements()
        self.baselines: dict[str, Baseline] = {}

    def _time(
        self, fns: Mapping[str, Call], items: int, syncs: Mapping[str, Sync] | None = None
    ) -> dict[str, Timing]:
        # Engine and reference calls alternate (see measure_interleaved): on a shared
        # machine a spell of load then hits both sides, not whichever ran at the time.
        time.sleep(_SETTLE_S)
        return measure_interleaved(
            dict(fns),
            items=items,
            repeats=self.cfg.repeats,
            warmup=self.cfg.warmup,
            syncs=dict(syncs) if syncs is not None else None,
            min_time_s=_MIN_TIME_S,
        )

    def _row(
        self,
        stage: str,
        tower: str,
        precision: str | None,
        device: str,
        batch: int,
        eng: Timing,
        ref: Timing | None,
        *,
        reference_precision: str | None = None,
    ) -> None:
        row = Row(
            stage=stage,
            tower=tower,
            precision=precision,
            device=device,
            batch=batch,
            engine=eng,
            reference=ref,
            reference_precision=reference_precision if ref is not None else None,
        )
        self.out.rows.append(row)
        msg = f"{stage:10s} {tower:5s} {precision or '-':4s} {device} b{batch:<3d} engine p50 {eng.p50_ms:8.2f} ms"
        if ref is not None:
            msg += f" | reference {ref.p50_ms:8.2f} ms | x{row.speedup:.2f}"
        self.progress.step(msg)

    def run_device(self, device: str) -> None:
        """Loads every side on `device` and measures every tower, batch and stage."""
        cfg = self.cfg
        refs: dict[str, Reference] = {}
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
        for p in cfg.precisions:
            if device == "cuda" and p == "bf16":
                self.out.skipped.append(
                    Skipped("bf16 on cuda", "bf16 is a CPU path; CUDA runs fp16")
                )
                continue
            if device == "cuda" and p == "int8":
                self.out.skipped.append(
                    Skipped(
                        "int8 on cuda",
                        "onnxruntime's CUDA execution provider has no int8 kernels "
                        "for dynamically quantized towers",
                    )
                )
                continue
            self.progress.say(f"loading engine {p} on {device} ...")
            engines[p] = Engine(
                self.model.folder,
                precision=p,
                device=device,
                threads=cfg.threads,
                spinning=cfg.spinning,
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
            self.out.skipped += skipped
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
                self.out.gpu_memory_reference.append(
                    {"side": "reference", "precision": r.precision, **gm}
                )

    # preprocessing / tokenization: independent of the engine's precision
    def _stages(self, tower: str, device: str, eng: Engine, ref: Reference | None) -> None:
        stage = "preprocess" if tower == "image" else "tokenize"
        for batch in self.cfg.batches:
            fns: dict[str, Call]
            if tower == "image":
                images: list[Image.Image] = self.inputs.image_batch(batch)
                fns = {"engine": partial(eng.preprocess, images)}
                if ref is not None:
                    fns["reference"] = partial(ref.preprocess, images)
            else:
                texts = self.inputs.text_batch(batch)
                fns = {"engine": partial(eng.tokenize, texts)}
                if ref is not None:
                    fns["reference"] = partial(ref.tokenize, texts)
            t = self._time(fns, batch)
            self._row(stage, tower, None, device, batch, t["engine"], t.get("reference"))

    def _ref_for(self, precision: str, refs: Mapping[str, Reference]) -> str | None:
        # fp16 engine rows compare with the fp16 reference where there is one (CUDA).
        if precision in refs:
            return precision
        return "fp32" if "fp32" in refs else None

    def _emit(
        self,
        stage: str,
        tower: str,
        device: str,
        batch: int,
        engines: Mapping[str, Engine],
        refs: Mapping[str, Reference],
        t: dict[str, Timing],
    ) -> None:
        for p in engines:
            rp = self._ref_for(p, refs)
            ref_t = t.get(f"reference {rp}") if rp else None
            self._row(
                stage, tower, p, device, batch, t[f"engine {p}"], ref_t, reference_precision=rp
            )

    def _tower(
        self,
        tower: str,
        device: str,
        batch: int,
        engines: Mapping[str, Engine],
        refs: Mapping[str, Reference],
    ) -> None:
        # One shared input per batch (cliprt's pixel values / token ids, the same numbers
        # for both sides), already on the device, so only the tower is timed.
        any_engine = next(iter(engines.values()))
        if tower == "image":
            host = any_engine.preprocess(self.inputs.image_batch(batch))
        else:
            host = any_engine.tokenize(self.inputs.text_batch(batch))
        fns: dict[str, Call] = {}
        syncs: dict[str, Sync] = {}
        for rp, ref in refs.items():
            name = f"reference {rp}"
            if tower == "image":
                x = ref.to_device(_torch_from_numpy(host))
                fns[name] = partial(ref.image_tower, x)
            else:
                tokens = ref.tokens_to_device(_torch_tokens(host))
                fns[name] = partial(ref.text_tower, tokens)
            syncs[name] = ref.sync_fn()
        for p, eng in engines.items():
            name = f"engine {p}"
            h = eng.to_device(host)
            if tower == "image":
                fns[name] = partial(eng.image_tower, h)
            else:
                fns[name] = partial(eng.text_tower, h)
            syncs[name] = eng.sync_fn()
        for b, base in self.baselines.items():
            fns[f"baseline {b}"] = base.tower(tower, host)
        t = self._time(fns, batch, syncs)
        self._emit("tower", tower, device, batch, engines, refs, t)
        for b in self.baselines:
            timing = t[f"baseline {b}"]
            self.out.baselines.append(
                BaselineRow(
                    tower=tower,
                    device=device,
                    batch=batch,
                    baseline=b,
                    timing=timing,
                    # > 1: cliprt at that precision is faster than the baseline.
                    speedup={p: timing.p50_ms / t[f"engine {p}"].p50_ms for p in engines},
                )
            )
            self.progress.say(
                f"baseline {b:14s} {tower:5s} b{batch:<3d} p50 {timing.p50_ms:8.2f} ms"
            )

    def _e2e(
        self,
        tower: str,
        device: str,
        batch: int,
        engines: Mapping[str, Engine],
        refs: Mapping[str, Reference],
    ) -> None:
        image = tower == "image"
        files: list[Path] = self.inputs.file_batch(batch)
        texts = self.inputs.text_batch(batch)
        fns: dict[str, Call] = {}
        syncs: dict[str, Sync] = {}
        for rp, ref in refs.items():
            name = f"reference {rp}"
            if image:
                fns[name] = partial(ref.encode_files, files)
            else:
                fns[name] = partial(ref.encode_texts, texts)
            syncs[name] = ref.sync_fn()
        for p, eng in engines.items():
            if image:
                fns[f"engine {p}"] = partial(eng.encode_files, files)
            else:
                fns[f"engine {p}"] = partial(eng.encode_texts, texts)
        self._emit("e2e", tower, device, batch, engines, refs, self._time(fns, batch, syncs))

    def _parity(
        self,
        tower: str,
        device: str,
        engines: Mapping[str, Engine],
        refs: Mapping[str, Reference],
    ) -> None:
        if not refs:
            return
        n = max(self.cfg.batches)
        files = self.inputs.file_batch(n)
        texts = self.inputs.text_batch(n)
        if tower == "image":
            host = next(iter(engines.values())).preprocess(self.inputs.image_batch(n))
        else:
            host = next(iter(engines.values())).tokenize(texts)
        ref_out: dict[str, dict[str, np.ndarray]] = {}
        if tower == "text":
            ref_ids = next(iter(refs.values())).tokenize(texts)["input_ids"].numpy()
            self.out.token_ids_equal = bool(
                self.out.token_ids_equal is not False
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
            ref_precision = self._ref_for(p, refs)
            if ref_precision is None:  # no reference to compare with
                continue
            if tower == "image":
                et = eng.image_tower(eng.to_device(host))
                ee = eng.encode_files(files)
            else:
                et = eng.text_tower(eng.to_device(host))
                ee = eng.encode_texts(texts)
            for kind, emb in (("tower", eng.to_numpy(et)), ("e2e", ee)):
                self.out.parity.append(
                    ParityRow(
                        tower=tower,
                        precision=p,
                        device=device,
                        kind=kind,
                        reference_precision=ref_precision,
                        agreement=compare(np.asarray(emb), ref_out[ref_precision][kind]),
                    )
                )
            self.progress.say(
                f"parity {tower} {p} {device}: min cosine tower "
                f"{self.out.parity[-2].agreement.min_cosine:.6f}, end to end "
                f"{self.out.parity[-1].agreement.min_cosine:.6f}"
            )


def _torch_from_numpy(x: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.ascontiguousarray(x))


def _torch_tokens(ids: np.ndarray) -> dict[str, torch.Tensor]:
    import torch

    t = torch.from_numpy(np.ascontiguousarray(ids.astype(np.int64)))
    # All prompts have the same length (see inputs.make_texts): the mask is all ones.
    return {"input_ids": t, "attention_mask": torch.ones_like(t)}
