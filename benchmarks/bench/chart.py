"""The PNG chart: tower latency (p50, with p90 whiskers) and throughput vs batch size,
cliprt per precision against the reference, one row of panels per tower and device.

matplotlib (Agg backend) is imported only here, only when a chart is written.
"""

from __future__ import annotations

from pathlib import Path

from cliprt.bench.result import BenchResult

# (batch, p50 ms, p90 ms, items/s)
Point = tuple[int, float, float, float]


def _series(result: BenchResult, tower: str, device: str) -> dict[str, list[Point]]:
    """label -> [(batch, p50_ms, p90_ms, items/s)] for the tower rows of one tower/device."""
    series: dict[str, list[Point]] = {}
    seen_ref: set[tuple[str | None, int]] = set()
    for r in result.rows:
        if r.stage != "tower" or r.tower != tower or r.device != device:
            continue
        e = r.engine
        series.setdefault(f"cliprt {r.precision}", []).append(
            (r.batch, e.p50_ms, e.p90_ms, e.throughput)
        )
        ref = r.reference
        key = (r.reference_precision, r.batch)
        if ref is not None and key not in seen_ref:
            seen_ref.add(key)
            series.setdefault(f"PyTorch {r.reference_precision}", []).append(
                (r.batch, ref.p50_ms, ref.p90_ms, ref.throughput)
            )
    return {k: sorted(v) for k, v in series.items()}


def write_chart(result: BenchResult, path: Path) -> Path:
    """Writes the chart to `path` (PNG) and returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(tower, device) for device in result.devices_run for tower in result.config.towers]
    nrows = max(1, len(panels))
    fig, axes = plt.subplots(nrows, 2, figsize=(11, 3.6 * nrows), squeeze=False)
    for row, (tower, device) in enumerate(panels):
        ax_lat, ax_thr = axes[row]
        for label, points in _series(result, tower, device).items():
            b = [p[0] for p in points]
            p50 = [p[1] for p in points]
            p90 = [p[2] for p in points]
            style = "--" if label.startswith("PyTorch") else "-"
            line = ax_lat.plot(b, p50, style, marker="o", label=label)[0]
            ax_lat.vlines(b, p50, p90, colors=line.get_color(), alpha=0.5)
            ax_thr.plot(
                b, [p[3] for p in points], style, marker="o", label=label, color=line.get_color()
            )
        batches = sorted(set(result.config.batches))
        for ax, ylabel in (
            (ax_lat, "latency p50 per batch (ms), bar to p90"),
            (ax_thr, "throughput (items/s)"),
        ):
            ax.set_xscale("log", base=2)
            ax.set_xticks(batches, [str(b) for b in batches])
            ax.minorticks_off()
            ax.set_xlabel("batch size")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{tower} tower, {device}")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        ax_lat.set_yscale("log")
    if not panels:
        axes[0][0].text(0.5, 0.5, "no device was measured", ha="center")
    env = result.env
    fig.suptitle(
        f"cliprt bench {result.model.arg}: {env['cpu']['model']}, "
        f"{env['threads']} threads, {env['date_utc'][:10]}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
