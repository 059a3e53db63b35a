"""The report of `cliprt bench serve`: serve.json (every figure), serve.md (tables and
the targets as measured) and serve.png (throughput and p50 against concurrency)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cliprt.bench.env import header_lines
from cliprt.runtime.atomic import atomic_write


def _f(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _sizes(sizes: dict[Any, int] | None) -> str:
    if not sizes:
        return "-"
    return " ".join(f"{k}:{v}" for k, v in sorted(((int(k), v) for k, v in sizes.items())))


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def _ratio(row: dict[str, Any], ceil: dict[str, Any] | None) -> str:
    # Against the ceiling measured around the row's own level when there is one.
    ceiling = row.get("ceiling_per_s") or (ceil["throughput_per_s"] if ceil else None)
    return _f(row["throughput_per_s"] / ceiling, 2) if ceiling else "-"


def _group(result: dict[str, Any], precision: str, modality: str) -> list[str]:
    rows = [r for r in result["rows"] if r["precision"] == precision and r["modality"] == modality]
    ceil = next((r for r in rows if r["loop"] == "ceiling"), None)
    lines = [f"### {precision} {modality}s", ""]
    if ceil:
        c = ceil["ceiling"]
        lines += [
            f"Ceiling (one batched call over the same {c['items']} items, batch "
            f"{result['config']['max_batch']}): **{ceil['throughput_per_s']:.1f} /s**, "
            f"{_f(ceil.get('cpu_ms_per_request'))} CPU ms per item. CPU ms/req is the bench "
            "process's CPU time (all threads) per request (HTTP rows: the server process's): "
            "the cost of a request whatever "
            "share of the shared machine the cell got.",
            "",
        ]
    closed = [r for r in rows if r["loop"] == "closed"]
    paired = [r for r in rows if r["loop"] == "paired"]
    closed.sort(key=lambda r: (r["target"] != "in-process", r["concurrency"], r["mode"]))
    table = []
    for r in closed:
        errs = sum(r["errors"].values()) if r.get("errors") else 0
        table.append(
            [r["target"], str(r["concurrency"]), r["mode"], _f(r["throughput_per_s"]),
             _ratio(r, ceil),
             _f(r["p50_ms"], 2), _f(r["p90_ms"], 2), _f(r["p99_ms"], 2), _f(r.get("cpu_ms_per_request")),
             _f(r.get("mean_batch")), _sizes(r.get("batch_sizes")), str(errs)]
        )  # fmt: skip
    lines += _table(
        ["target", "callers", "mode", "req/s", "x ceiling", "p50 ms", "p90 ms", "p99 ms",
         "CPU ms/req", "mean batch", "batch sizes (size:calls)", "errors"],
        table,
    )  # fmt: skip
    if paired:
        lines += [
            "",
            f"One caller, paired: direct, batched in process and batched over HTTP alternate call "
            f"by call ({paired[0]['requests']} calls each). CPU ms/call: this process's for the "
            "in-process modes, the server's over HTTP.",
            "",
        ]
        lines += _table(
            ["target", "mode", "p50 ms", "p90 ms", "p99 ms", "CPU ms/call"],
            [[r["target"], r["mode"], _f(r["p50_ms"], 2), _f(r["p90_ms"], 2), _f(r["p99_ms"], 2),
              _f(r.get("cpu_ms_per_request"), 2)] for r in paired],
        )  # fmt: skip
    opened = [r for r in rows if r["loop"] == "open"]
    if opened:
        opened.sort(key=lambda r: (r["offered_per_s"], r["mode"]))
        lines += ["", "Open loop (Poisson arrivals, in process):", ""]
        lines += _table(
            ["offered /s", "x ceiling", "mode", "answered /s", "p50 ms", "p90 ms", "p99 ms", "mean batch", "refused"],
            [
                [_f(r["offered_per_s"]), _f(r["offered_fraction"], 2), r["mode"], _f(r["throughput_per_s"]),
                 _f(r["p50_ms"], 2), _f(r["p90_ms"], 2), _f(r["p99_ms"], 2), _f(r.get("mean_batch")),
                 str(sum(r["errors"].values()))]
                for r in opened
            ],
        )  # fmt: skip
    return [*lines, ""]


def _checks(result: dict[str, Any]) -> list[str]:
    lines = ["## The targets, as measured", ""]
    rows = []
    for c in result["checks"]:
        rows.append(
            [f"{c['precision']} {c['modality']}",
             _f(c.get("c32_batched_over_ceiling"), 2),
             _f(c.get("c32_throughput_batched_over_unbatched"), 2),
             _f(c.get("c32_p50_unbatched_over_batched"), 2),
             f"{_f(c.get('c32_p99_batched_ms'))} / {_f(c.get('c32_p99_unbatched_ms'))} / {_f(c.get('c32_p99_direct_ms'))}",
             _f(c.get("c32_throughput_batched_over_direct"), 2),
             f"{_f(c.get('c32_cpu_batched_ms_per_request'))} / {_f(c.get('cpu_ceiling_ms_per_item'))} / "
             f"{_f(c.get('c32_cpu_unbatched_over_batched'), 2)}",
             _f(c.get("c1_p50_batched_over_direct"), 2),
             f"{_f(c.get('c1_http_overhead_ms'), 2)} (server CPU {_f(c.get('c1_http_server_cpu_overhead_ms'), 2)})"]
        )  # fmt: skip
    lines += _table(
        ["", "32 callers: batched / ceiling (goal >= 0.90)", "batched / unbatched req/s",
         "unbatched p50 / batched p50 (goal: >= the req/s factor)", "p99 ms batched / unbatched / direct",
         "batched / direct req/s", "CPU ms/req at 32 callers: batched / ceiling / unbatched-over-batched",
         "1 caller: batched p50 / direct p50 (goal <= 1.10)",
         "HTTP overhead at 1 caller: p50 ms (server CPU ms) (goal <= 1)"],
        rows,
    )  # fmt: skip
    return [*lines, ""]


def markdown(result: dict[str, Any]) -> str:
    """serve.md."""
    env, cfg = result["environment"], result["config"]
    lines = ["# cliprt bench serve", ""]
    lines += [f"- {x}" for x in header_lines(env)]
    lines += [
        f"- uptime at start: `{env.get('uptime_start')}`; at end: `{env.get('uptime_end')}`",
        f"- model: {cfg['model']}; batched: max_batch={cfg['max_batch']}, max_wait_ms={cfg['max_wait_ms']}; "
        "unbatched: the same front with max_batch=1; direct: each caller calls the model itself "
        "(concurrent session.run, today's behaviour without the front); onnxruntime threads "
        f"{'spin during a tower call' if cfg.get('spinning') else 'never spin'} (in process and in the server)",
        f"- single-item requests; images are JPEG files (bytes, decoded in the pool), texts "
        f"{cfg['seq_len']} tokens; {cfg['items']} distinct items cycled",
        "- closed loop, steady state only: each caller's first "
        f"{cfg.get('warmup_rounds', 1)} requests are warm-up; the window closes when the first "
        "caller runs out of requests (the drain is not timed); latencies are those of the "
        "requests started inside it, req/s the callers over their mean latency (Little's law) "
        f"({cfg['requests_per_caller']} per caller, at least {cfg['min_requests']}); each level's "
        '"x ceiling" is against the median of 3 ceiling calls right before its cells and 3 '
        "right after (the ceiling line: all of them); the single-caller targets come from the "
        "paired measurement (modes alternating call by call) when there is one",
        f"- command: `{' '.join(cfg['argv'])}`",
        "",
    ]
    lines += _checks(result)
    precisions = list(dict.fromkeys(r["precision"] for r in result["rows"]))
    modalities = list(dict.fromkeys(r["modality"] for r in result["rows"]))
    for p in precisions:
        for m in modalities:
            lines += _group(result, p, m)
    return "\n".join(lines)


def write_chart(result: dict[str, Any], path: Path) -> Path:
    """serve.png: per precision x modality, req/s and p50 against concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r["precision"], r["modality"]) for r in result["rows"]))
    fig, axes = plt.subplots(len(groups), 2, figsize=(11, 3.2 * len(groups)), squeeze=False)
    for (p, m), (ax_t, ax_l) in zip(groups, axes, strict=True):
        rows = [r for r in result["rows"] if r["precision"] == p and r["modality"] == m]
        for target, style in (("in-process", "-o"), ("http", "--s")):
            for mode in ("batched", "unbatched", "direct"):
                pts = sorted(
                    (r["concurrency"], r["throughput_per_s"], r["p50_ms"])
                    for r in rows
                    if r["loop"] == "closed" and r["target"] == target and r["mode"] == mode
                )
                if not pts:
                    continue
                label = f"{mode} ({target})"
                ax_t.plot([x[0] for x in pts], [x[1] for x in pts], style, label=label)
                ax_l.plot([x[0] for x in pts], [x[2] for x in pts], style, label=label)
        ceil = next((r for r in rows if r["loop"] == "ceiling"), None)
        if ceil:
            ax_t.axhline(
                ceil["throughput_per_s"], color="k", ls=":", label="ceiling (one batched call)"
            )
        for ax, ylabel in ((ax_t, "requests/s"), (ax_l, "p50 latency (ms)")):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent callers")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{p} {m}s")
            ax.grid(alpha=0.3)
        ax_l.set_yscale("log")
        ax_t.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _atomic_write(path: Path, data: str) -> None:
    # The runtime's writer: the mode a plain open() gives (mkstemp's was 0600).
    with atomic_write(path) as f:
        f.write(data.encode("utf-8"))


def write(result: dict[str, Any], out: Path) -> list[Path]:
    """Writes serve.json, serve.md and serve.png into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "serve.json", json.dumps(result, indent=1, default=str))
    _atomic_write(out / "serve.md", markdown(result))
    return [out / "serve.json", out / "serve.md", write_chart(result, out / "serve.png")]
