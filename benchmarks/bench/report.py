"""The result of a run (result.BenchResult) as JSON (every raw figure), Markdown and a
console table."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from cliprt.bench.env import header_lines
from cliprt.bench.result import BaselineRow, BenchResult, MemoryProbe, Row
from cliprt.bench.timing import Timing

JSON_NAME = "bench.json"
MARKDOWN_NAME = "bench.md"
CHART_NAME = "bench.png"

_STAGE_ORDER = {"tower": 0, "preprocess": 1, "tokenize": 1, "e2e": 2}


def _mib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**20:.1f}"


def _ms(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}" if x < 100 else f"{x:.1f}"


def _x(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _ips(x: float | None) -> str:
    return "-" if x is None else (f"{x:.1f}" if x < 1000 else f"{x:.0f}")


def sorted_rows(result: BenchResult) -> list[Row]:
    return sorted(
        result.rows,
        key=lambda r: (
            r.device,
            r.tower,
            _STAGE_ORDER[r.stage],
            r.precision or "",
            r.batch,
        ),
    )


@dataclass(frozen=True)
class MemorySummary:
    """Medians over the fresh-process probes of one (side, precision, device)."""

    side: str
    precision: str
    device: str
    probes: int
    disk_bytes: int | None
    peak_rss_bytes: float | None
    cold_start_image_ms: float | None
    cold_start_text_ms: float | None
    import_ms: float | None
    load_ms: float | None
    gpu_process_bytes: float | None
    torch_imported: bool


def _median(values: list[float | int | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def memory_summary(result: BenchResult) -> list[MemorySummary]:
    """Medians over the fresh-process probes of each (side, precision, device)."""
    groups: dict[tuple[str, str, str], list[MemoryProbe]] = defaultdict(list)
    for m in result.memory:
        groups[(m.side, m.precision, m.device)].append(m)
    sizes = result.model
    out = []
    for (side, prec, device), probes in groups.items():
        disk = (
            sizes.engine_total_bytes.get(prec)
            if side == "engine"
            else sizes.reference_checkpoint_bytes
        )
        out.append(
            MemorySummary(
                side=side,
                precision=prec,
                device=device,
                probes=len(probes),
                disk_bytes=disk,
                peak_rss_bytes=_median([p.peak_rss_bytes for p in probes]),
                cold_start_image_ms=_median([p.cold_start_image_ms for p in probes]),
                cold_start_text_ms=_median([p.cold_start_text_ms for p in probes]),
                import_ms=_median([p.import_ms for p in probes]),
                load_ms=_median([p.load_ms for p in probes]),
                gpu_process_bytes=_median([p.gpu_process_bytes for p in probes]),
                torch_imported=any(p.torch_imported for p in probes),
            )
        )
    return out


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def headline_rows(result: BenchResult) -> list[list[str]]:
    """Tower-only rows: the engine against the reference on identical tensors."""
    cos = {
        (p.tower, p.precision, p.device): p.agreement.min_cosine
        for p in result.parity
        if p.kind == "tower"
    }
    out = []
    for r in sorted_rows(result):
        if r.stage != "tower":
            continue
        ref = r.reference
        c = cos.get((r.tower, r.precision or "", r.device))
        out.append(
            [
                r.tower,
                r.precision or "-",
                r.device,
                str(r.batch),
                _ms(r.engine.p50_ms),
                _ms(ref.p50_ms) if ref else "-",
                _x(r.speedup),
                _ips(r.engine.throughput),
                _ips(ref.throughput) if ref else "-",
                "-" if c is None else f"{c:.6f}",
            ]
        )
    return out


HEADLINE_HEADERS = [
    "tower",
    "precision",
    "device",
    "batch",
    "cliprt p50 ms",
    "reference p50 ms",
    "speedup",
    "cliprt items/s",
    "reference items/s",
    "min cosine vs reference",
]


def baseline_table(result: BenchResult) -> tuple[list[str], list[list[str]]]:
    """Tower p50 ms of every cliprt precision, the reference and every baseline, per
    (tower, device, batch), with the best cliprt precision's speed-up over each baseline
    (all from the same interleaved calls)."""
    base = result.baselines
    if not base:
        return [], []
    names = list(dict.fromkeys(b.baseline for b in base))
    precs = list(result.config.precisions)
    tower_rows = {
        (r.tower, r.device, r.batch, r.precision): r for r in result.rows if r.stage == "tower"
    }
    headers = (
        ["tower", "batch"]
        + [f"cliprt {p}" for p in precs]
        + ["reference (eager fp32)"]
        + names
        + [f"best cliprt vs {n}" for n in names]
    )
    by_key: dict[tuple[str, str, int], dict[str, BaselineRow]] = defaultdict(dict)
    for b in base:
        by_key[(b.tower, b.device, b.batch)][b.baseline] = b
    rows = []
    for (tower, device, batch), bs in by_key.items():
        eng = {p: tower_rows.get((tower, device, batch, p)) for p in precs}
        ms = {p: r.engine.p50_ms for p, r in eng.items() if r}
        ref = next((r.reference for r in eng.values() if r and r.reference), None)
        best = min(ms, key=lambda p: ms[p]) if ms else None
        cells = [tower, str(batch)]
        cells += [_ms(ms.get(p)) for p in precs]
        cells.append(_ms(ref.p50_ms) if ref else "-")
        cells += [_ms(bs[n].timing.p50_ms) if n in bs else "-" for n in names]
        cells += [
            f"{bs[n].speedup[best]:.2f}x ({best})" if n in bs and best else "-" for n in names
        ]
        rows.append(cells)
    return headers, rows


def _all_rows(result: BenchResult) -> list[list[str]]:
    out = []
    for r in sorted_rows(result):
        e, ref = r.engine, r.reference
        out.append(
            [
                r.stage,
                r.tower,
                r.precision or "-",
                r.device,
                str(r.batch),
                _ms(e.p50_ms),
                _ms(e.p90_ms),
                _ms(e.p99_ms),
                _ips(e.throughput),
                _ms(ref.p50_ms) if ref else "-",
                _ms(ref.p90_ms) if ref else "-",
                _ms(ref.p99_ms) if ref else "-",
                _ips(ref.throughput) if ref else "-",
                "-" if r.ratio_p50 is None else f"{r.ratio_p50:.3f}",
                _x(r.speedup),
            ]
        )
    return out


ALL_HEADERS = [
    "stage",
    "tower",
    "prec",
    "device",
    "batch",
    "cliprt p50",
    "p90",
    "p99",
    "items/s",
    "ref p50",
    "p90",
    "p99",
    "items/s",
    "cliprt/ref",
    "speedup",
]


def _side(row: Row, key: str) -> Timing | None:
    return row.engine if key == "engine" else row.reference


def _breakdown(result: BenchResult) -> list[list[str]]:
    """Per tower, device, batch and side: input stage, tower and end-to-end p50 (ms)."""
    idx = {(r.stage, r.tower, r.precision, r.device, r.batch): r for r in result.rows}
    out = []
    cfg = result.config
    for device in result.devices_run:
        for tower in cfg.towers:
            stage = "preprocess" if tower == "image" else "tokenize"
            for batch in cfg.batches:
                pre = idx.get((stage, tower, None, device, batch))
                sides: list[tuple[str | None, str]] = [(p, "engine") for p in cfg.precisions]
                if not cfg.no_reference:
                    sides.append((cfg.precisions[0], "reference"))
                for prec, key in sides:
                    tw = idx.get(("tower", tower, prec, device, batch))
                    e2e = idx.get(("e2e", tower, prec, device, batch))
                    if tw is None or e2e is None:
                        continue
                    tw_t, e2e_t = _side(tw, key), _side(e2e, key)
                    if tw_t is None or e2e_t is None:
                        continue
                    pre_t = _side(pre, key) if pre else None
                    p_ms = pre_t.p50_ms if pre_t else None
                    t_ms, e_ms = tw_t.p50_ms, e2e_t.p50_ms
                    rest = e_ms - t_ms - (p_ms or 0)
                    name = (
                        f"cliprt {prec}"
                        if key == "engine"
                        else f"reference {tw.reference_precision}"
                    )
                    out.append(
                        [
                            tower,
                            device,
                            str(batch),
                            name,
                            _ms(p_ms),
                            _ms(t_ms),
                            _ms(rest),
                            _ms(e_ms),
                        ]
                    )
    return out


BREAKDOWN_HEADERS = [
    "tower",
    "device",
    "batch",
    "side",
    "preprocess / tokenize ms",
    "tower ms",
    "e2e - stages ms",
    "end to end ms",
]


def _parity_rows(result: BenchResult) -> list[list[str]]:
    return [
        [
            p.tower,
            p.precision,
            p.device,
            p.kind,
            p.reference_precision,
            str(p.agreement.n),
            f"{p.agreement.min_cosine:.6f}",
            f"{p.agreement.mean_cosine:.6f}",
            f"{p.agreement.max_abs_diff:.2e}",
        ]
        for p in result.parity
    ]


PARITY_HEADERS = [
    "tower",
    "precision",
    "device",
    "inputs",
    "vs reference",
    "n",
    "min cosine",
    "mean cosine",
    "max abs diff",
]


def _memory_rows(result: BenchResult) -> list[list[str]]:
    return [
        [
            m.side,
            m.precision,
            m.device,
            _mib(m.disk_bytes),
            _mib(m.peak_rss_bytes),
            _ms(m.cold_start_image_ms),
            _ms(m.cold_start_text_ms),
            _ms(m.import_ms),
            _ms(m.load_ms),
            _mib(m.gpu_process_bytes),
            "yes" if m.torch_imported else "no",
            str(m.probes),
        ]
        for m in memory_summary(result)
    ]


MEMORY_HEADERS = [
    "side",
    "precision",
    "device",
    "on disk MiB",
    "peak RSS MiB",
    "cold start to 1st image ms",
    "to 1st text ms",
    "imports ms",
    "load ms",
    "GPU MiB",
    "torch loaded",
    "fresh processes",
]


def _image_sizes(result: BenchResult) -> str:
    sizes = sorted({(i.width, i.height) for i in result.inputs.images})
    return ", ".join(f"{w}x{h}" for w, h in sizes)


def _baseline_section(result: BenchResult) -> list[str]:
    headers, rows = baseline_table(result)
    if not rows:
        return []
    return [
        "## Towers: cliprt vs what a user would run instead (p50 ms, same interleaved calls)",
        "",
        "onnxruntime: plain onnxruntime, default SessionOptions (threads set), same fp32 "
        "file; torch-fp32: transformers CLIPModel, default (sdpa) attention; torch-bf16: "
        "the same after `model.to(torch.bfloat16)`. Speed-up > 1: cliprt faster.",
        "",
        *_table(headers, rows),
        "",
    ]


def markdown(result: BenchResult) -> str:
    """The whole result as a Markdown document."""
    cfg, model, env = result.config, result.model, result.env
    lines = [f"# cliprt bench: {model.arg}", ""]
    lines += [f"- {line}" for line in header_lines(env)]
    lines += [
        f"- command: `{' '.join(cfg.argv) or '(API)'}`",
        f"- model: source `{model.source}`, embed dim {model.embed_dim}, image "
        f"{model.image_size} px, context {model.context_length}",
        f"- reference: {model.reference_note or 'none (--no-reference)'}",
        f"- inputs: {len(result.inputs.images)} JPEG photos ({_image_sizes(result)}), "
        f"prompts of exactly {result.inputs.seq_len} tokens; token ids identical on both "
        f"sides: {result.token_ids_equal}",
        f"- timing: {cfg.warmup} warm-up + {cfg.repeats} timed calls per row (rows "
        "whose calls add up to under 1 s get up to 5x more; every time is in the JSON); p50 "
        "is the median; speedup = reference p50 / cliprt p50 (> 1: cliprt faster); "
        "tower rows feed both sides the same tensors; engine and reference calls alternate "
        "round-robin, so load from other processes falls on both",
        "- end to end: cliprt decodes images with as many workers as threads (its own "
        "pipeline); the reference decodes in the calling thread, as a plain transformers "
        "script does",
        "- cold start: wall time from launching a fresh `python` to its first embedding "
        "(interpreter, imports, load, first call); peak RSS: that process's VmHWM after "
        f"embedding a batch of {max(cfg.batches)} images and texts",
        f"- wall time of the benchmark: {result.wall_s:.0f} s",
        "",
        "## Towers: cliprt vs the PyTorch reference",
        "",
        *_table(HEADLINE_HEADERS, headline_rows(result)),
        "",
        *_baseline_section(result),
        "## Where the time goes (p50)",
        "",
        "End to end = file or string -> normalised embedding through each side's public "
        "path. `e2e - stages` is what the two timed stages leave over: JPEG decoding and "
        "copies; below zero where cliprt decodes the next images while the tower runs, or "
        "within noise.",
        "",
        *_table(BREAKDOWN_HEADERS, _breakdown(result)),
        "",
        "## Parity (L2-normalised embeddings, same inputs)",
        "",
        "`tower`: both towers fed the same tensors; `e2e`: each side from the same files "
        "and strings with its own preprocessing and tokenization.",
        "",
        *_table(PARITY_HEADERS, _parity_rows(result)),
        "",
        "## Size on disk, peak memory, cold start (each side alone in a fresh process; medians)",
        "",
        *_table(MEMORY_HEADERS, _memory_rows(result)),
        "",
        "## Every row",
        "",
        "ms per call (one call = one batch); items/s at p50.",
        "",
        *_table(ALL_HEADERS, _all_rows(result)),
        "",
    ]
    if result.notes:
        lines += ["## Notes", ""]
        lines += [f"- {n}" for n in result.notes]
        lines.append("")
    if result.skipped:
        lines += ["## Not measured", ""]
        lines += [f"- {s.what}: {s.reason}" for s in result.skipped]
        lines.append("")
    return "\n".join(lines)


def console(result: BenchResult) -> str:
    """A compact plain-text report for the terminal."""

    def fmt(headers: list[str], rows: list[list[str]]) -> list[str]:
        widths = [
            max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
            for i, h in enumerate(headers)
        ]
        line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
        body = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        return [line, "-" * len(line), *body]

    lines = [*header_lines(result.env), ""]
    lines += fmt(ALL_HEADERS, _all_rows(result))
    if result.parity:
        lines += ["", *fmt(PARITY_HEADERS, _parity_rows(result))]
    mem = _memory_rows(result)
    if mem:
        lines += ["", *fmt(MEMORY_HEADERS, mem)]
    for s in result.skipped:
        lines.append(f"not measured: {s.what}: {s.reason}")
    for n in result.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines)


def write(result: BenchResult, out: Path, *, chart: bool = True) -> dict[str, Path]:
    """Writes bench.json, bench.md and (with `chart`) bench.png into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / JSON_NAME, "markdown": out / MARKDOWN_NAME}
    paths["json"].write_text(
        json.dumps(result.to_json(), indent=1, default=str) + "\n", encoding="utf-8"
    )
    paths["markdown"].write_text(markdown(result), encoding="utf-8")
    if chart:
        from cliprt.bench.chart import write_chart

        paths["chart"] = write_chart(result, out / CHART_NAME)
    return paths
