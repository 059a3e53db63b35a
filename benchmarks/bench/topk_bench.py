"""`cliprt bench topk`: the top-k kernel against numpy, FAISS and usearch, in one run.

Every method searches the same L2-normalised random database (N x D) with the same
queries. Beside each time stand the bytes the method had to read, the GB/s that makes,
and the fraction of the machine's read bandwidth: the time of a plain multi-threaded
read of the same rows (cliprt's stream_read, the floor no scan can beat), measured in
this run, divided by the method's time. Figures are medians over the repeats; a slow
cell stops repeating once it has used its time budget (its repeat count is reported).

    python -m cliprt.bench.topk_bench --n 100000 1000000 --out benchmarks/results/topk.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from cliprt import _topk
from cliprt.runtime.index import Index

# What a method builder returns: search(q), database bytes read, close(), floor() | None.
_Built = tuple[Callable[[np.ndarray], object], int, Callable[[], None], Callable[[], object] | None]

# Seconds one (method, N, batch) cell may spend repeating before it stops at fewer
# repeats than asked: FAISS and numpy need seconds per 256-query call at N = 1M.
_CELL_BUDGET_S = 20.0
_TARGETS = (
    "one fp32 query within 1.15x of the fp32 read floor",
    "one fp16 / int8 query within 1.25x of its own read floor",
    "16 queries >= 5x faster than FAISS IndexFlatIP",
    "256 queries >= 2x faster than FAISS IndexFlatIP",
)


def _median_ms(fn: Callable[[], object], repeats: int) -> tuple[float, int]:
    """Median wall time of fn in ms, after one untimed warm-up call."""
    fn()
    times: list[float] = []
    spent = 0.0
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
        if spent > _CELL_BUDGET_S:
            break
    return float(np.median(times)) * 1e3, len(times)


def _paired_median_ms(
    floor: Callable[[], object], fn: Callable[[], object], repeats: int
) -> tuple[float, float, int]:
    """Medians (ms) of fn and of the floor read, timed alternately, so both see the same
    load on a shared machine; returns (fn ms, floor ms, pairs)."""
    floor()
    fn()
    a: list[float] = []
    b: list[float] = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        floor()
        t1 = time.perf_counter()
        fn()
        t2 = time.perf_counter()
        a.append(t1 - t0)
        b.append(t2 - t1)
    return float(np.median(b)) * 1e3, float(np.median(a)) * 1e3, len(b)


def _database(n: int, dim: int, seed: int) -> np.ndarray:
    """L2-normalised rows (what CLIP embeddings are), built in chunks to bound memory."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 65536):
        block = rng.standard_normal((min(65536, n - start), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        x[start : start + block.shape[0]] = block
    return x


def _numpy_topk(x: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = q @ x.T
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-top, axis=1)
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1)


def _methods(x: np.ndarray, k: int, threads: int) -> list[tuple[str, str, Any]]:
    """(method, dtype, builder) triples; a builder returns (search(q), bytes read, close,
    floor() or None): floor reads the method's own stored rows, where there are any."""

    def cliprt_index(dtype: str) -> Any:
        def build() -> _Built:
            index = Index(x.shape[1], dtype, threads=threads)
            index.add(x)
            stored = index._rows[: len(index)]
            nbytes = stored.nbytes + (index._scales[: len(index)].nbytes if dtype == "int8" else 0)
            # The floor of a one-query scan: reading these very rows, same threads.
            return (
                lambda q: index.search(q, k),
                nbytes,
                lambda: None,
                lambda: _topk.stream_read(stored, threads=threads),
            )

        return build

    def numpy_build() -> _Built:
        return (lambda q: _numpy_topk(x, q, k)), x.nbytes, lambda: None, None

    out: list[tuple[str, str, Any]] = [
        ("cliprt", "fp32", cliprt_index("fp32")),
        ("cliprt", "fp16", cliprt_index("fp16")),
        ("cliprt", "int8", cliprt_index("int8")),
        ("numpy matmul+argpartition", "fp32", numpy_build),
    ]
    try:
        import faiss

        faiss.omp_set_num_threads(threads)

        def faiss_index(kind: str) -> Any:
            def build() -> _Built:
                d = x.shape[1]
                index: faiss.Index
                if kind == "flat":
                    index = faiss.IndexFlatIP(d)
                    nbytes = x.nbytes
                else:
                    qtype = {
                        "fp16": faiss.ScalarQuantizer.QT_fp16,
                        "int8": faiss.ScalarQuantizer.QT_8bit,
                    }[kind]
                    index = faiss.IndexScalarQuantizer(d, qtype, faiss.METRIC_INNER_PRODUCT)
                    index.train(x[: min(len(x), 100_000)])
                    nbytes = x.shape[0] * index.code_size
                index.add(x)
                return (lambda q: index.search(q, k)), nbytes, index.reset, None

            return build

        out += [
            ("faiss IndexFlatIP", "fp32", faiss_index("flat")),
            ("faiss IndexScalarQuantizer QT_fp16", "fp16", faiss_index("fp16")),
            ("faiss IndexScalarQuantizer QT_8bit", "int8", faiss_index("int8")),
        ]
    except ImportError:
        pass
    try:
        from usearch.index import MetricKind
        from usearch.index import search as usearch_search

        def usearch_build() -> _Built:
            def run(q: np.ndarray) -> object:
                return usearch_search(x, q, k, MetricKind.IP, exact=True, threads=threads)

            return run, x.nbytes, lambda: None, None

        out.append(("usearch exact", "fp32", usearch_build))
    except ImportError:
        pass
    return out


def _floors(x: np.ndarray, threads: int, repeats: int) -> dict[str, float]:
    """ms to read the rows once, per storage dtype, with `threads` threads."""
    scale = np.float32(127.0)
    stores = {
        "fp32": x,
        "fp16": x.astype(np.float16),
        "int8": np.clip(np.rint(x * scale), -127, 127).astype(np.int8),
    }
    out = {}
    for dtype, arr in stores.items():
        out[dtype], _ = _median_ms(partial(_topk.stream_read, arr, threads=threads), repeats)
    return out


def run(
    n_list: Sequence[int],
    dim: int,
    k: int,
    batches: Sequence[int],
    threads: int,
    repeats: int,
) -> list[dict[str, Any]]:
    """Times every method on every (N, batch size); returns one dict per cell.

    Each dict: n, dim, k, batch, threads, method, dtype, ms (median), repeats (timed),
    bytes (the database bytes one search reads), gb_s, floor_ms (read floor of that
    dtype's rows, same run; for cliprt's one-query cells the floor timed alternately with
    the search over the index's own rows), floor_fraction (floor_ms / ms), vs_faiss_flat
    (FAISS IndexFlatIP ms / ms).
    """
    rows: list[dict[str, Any]] = []
    for n in n_list:
        x = _database(n, dim, seed=n)
        qrng = np.random.default_rng(1)
        queries = {b: _database(b, dim, seed=int(qrng.integers(1 << 31))) for b in batches}
        floors = _floors(x, threads, max(repeats, 5))
        cell_rows: list[dict[str, Any]] = []
        for method, dtype, build in _methods(x, k, threads):
            search, nbytes, close, own_floor = build()
            for b in batches:
                floor_ms = floors[dtype]
                if b == 1 and own_floor is not None:
                    # Paired with its floor, alternately: the ratio the targets are about.
                    ms, floor_ms, done = _paired_median_ms(
                        own_floor, partial(search, queries[b]), max(repeats, 7)
                    )
                else:
                    ms, done = _median_ms(partial(search, queries[b]), repeats)
                cell_rows.append(
                    {
                        "n": n,
                        "dim": dim,
                        "k": k,
                        "batch": b,
                        "threads": threads,
                        "method": method,
                        "dtype": dtype,
                        "ms": round(ms, 3),
                        "repeats": done,
                        "bytes": int(nbytes),
                        "gb_s": round(nbytes / ms / 1e6, 2),
                        "floor_ms": round(floor_ms, 3),
                        "floor_fraction": round(floor_ms / ms, 3),
                    }
                )
            close()
            del search
        flat = {r["batch"]: r["ms"] for r in cell_rows if r["method"] == "faiss IndexFlatIP"}
        for r in cell_rows:
            if r["batch"] in flat:
                r["vs_faiss_flat"] = round(flat[r["batch"]] / r["ms"], 2)
        rows += cell_rows
        del x
    return rows


def environment(threads: int) -> dict[str, Any]:
    """Machine, ISA, threads and versions beside the figures."""
    from cliprt.bench.env import cpu_description, load_average

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("cliprt", "numpy", "faiss-cpu", "usearch"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_description(),
        "threads": threads,
        "cliprt_isa": _topk.current_isa(),
        "cliprt_isas": _topk.available_isas(),
        "blas_threads_env": os.environ.get("OPENBLAS_NUM_THREADS")
        or os.environ.get("OMP_NUM_THREADS"),
        "load_average": load_average(),
        "versions": versions,
    }


def markdown(rows: list[dict[str, Any]], env: dict[str, Any], command: str) -> str:
    """The results as a Markdown report: header, one table per N, the targets."""
    cpu = env["cpu"]
    v = env["versions"]
    lines = [
        "# Top-k kernel benchmark",
        "",
        f"Command: `{command}`",
        "",
        f"- machine: {cpu['model']} ({cpu['arch']}), {cpu['logical_cores']} logical cores, "
        f"{cpu['usable_cores']} usable; flags: {' '.join(cpu['isa'])}",
        f"- threads: {env['threads']} for every method (cliprt, FAISS omp, usearch); numpy's "
        f"BLAS uses its default (OPENBLAS_NUM_THREADS={env['blas_threads_env']})",
        f"- cliprt ISA: {env['cliprt_isa']} (available: {', '.join(env['cliprt_isas'])})",
        f"- versions: cliprt {v['cliprt']}, numpy {v['numpy']}, faiss-cpu {v['faiss-cpu']}, "
        f"usearch {v['usearch']}, python {v['python']}",
        f"- date: {env['date_utc']}; load average at start {env['load_average']}, "
        f"at end {env.get('load_average_end')}",
        "",
        "Cells: median ms · GB/s of the rows read · fraction of the read floor "
        "(floor ms / ms; 1.0 = as fast as reading the rows) · speed-up over FAISS "
        "IndexFlatIP at the same batch size.",
    ]
    for n in sorted({r["n"] for r in rows}):
        sub = [r for r in rows if r["n"] == n]
        batches = sorted({r["batch"] for r in sub})
        first = sub[0]
        floors = {r["dtype"]: r["floor_ms"] for r in sub}
        lines += [
            "",
            f"## N = {n:,}, D = {first['dim']}, k = {first['k']}, {first['threads']} threads",
            "",
            "Read floor (stream_read, same run; cliprt's batch-1 cells pair each search with "
            "its own floor read, alternately): "
            + ", ".join(f"{d} {ms:.1f} ms" for d, ms in floors.items()),
            "",
            "| method | rows | " + " | ".join(f"batch {b}" for b in batches) + " |",
            "|---|---|" + "---|" * len(batches),
        ]
        methods = list(dict.fromkeys((r["method"], r["dtype"]) for r in sub))
        for method, dtype in methods:
            cells = []
            for b in batches:
                r = next(
                    r for r in sub if (r["method"], r["dtype"], r["batch"]) == (method, dtype, b)
                )
                vs = f" · {r['vs_faiss_flat']:.2f}x" if "vs_faiss_flat" in r else ""
                reps = "" if r["repeats"] >= 3 else f" (n={r['repeats']})"
                cells.append(
                    f"{r['ms']:.1f} ms{reps} · {r['gb_s']:.1f} GB/s · {r['floor_fraction']:.2f}{vs}"
                )
            lines.append(f"| {method} | {dtype} | " + " | ".join(cells) + " |")
        lines += ["", "Targets:", ""]
        lines += [f"- {t}: {verdict}" for t, verdict in _verdicts(sub)]
    return "\n".join(lines) + "\n"


def _verdicts(sub: list[dict[str, Any]]) -> list[tuple[str, str]]:
    def cell(method: str, dtype: str, batch: int) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in sub
                if r["method"] == method and r["dtype"] == dtype and r["batch"] == batch
            ),
            None,
        )

    out = []
    one = [cell("cliprt", d, 1) for d in ("fp32", "fp16", "int8")]
    if all(one):
        ratios = {r["dtype"]: r["ms"] / r["floor_ms"] for r in one if r}
        out.append(
            (
                _TARGETS[0],
                f"{ratios['fp32']:.2f}x ({'met' if ratios['fp32'] <= 1.15 else 'MISSED'})",
            )
        )
        met = ratios["fp16"] <= 1.25 and ratios["int8"] <= 1.25
        out.append(
            (
                _TARGETS[1],
                f"fp16 {ratios['fp16']:.2f}x, int8 {ratios['int8']:.2f}x "
                f"({'met' if met else 'MISSED'})",
            )
        )
    for target, batch, need in ((_TARGETS[2], 16, 5.0), (_TARGETS[3], 256, 2.0)):
        r = cell("cliprt", "fp32", batch)
        if r and "vs_faiss_flat" in r:
            ok = r["vs_faiss_flat"] >= need
            out.append((target, f"{r['vs_faiss_flat']:.2f}x ({'met' if ok else 'MISSED'})"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m cliprt.bench.topk_bench` and `cliprt bench topk`."""
    p = argparse.ArgumentParser(
        prog="cliprt bench topk",
        description="Time cliprt's top-k kernel (fp32, fp16, int8 rows) against numpy, "
        "FAISS (IndexFlatIP, IndexScalarQuantizer fp16 / 8bit) and usearch exact search, "
        "beside the machine's read floor measured in the same run.",
    )
    p.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000], help="rows")
    p.add_argument("--dim", type=int, default=512, help="vector length")
    p.add_argument("--k", type=int, default=10, help="hits per query")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256], help="queries")
    p.add_argument("--threads", type=int, default=2, help="threads for every method")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per cell (median)")
    p.add_argument("--out", type=Path, help="write a Markdown report here (and .json beside)")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)

    command = " ".join(["python -m cliprt.bench.topk_bench", *argv])
    env = environment(args.threads)
    rows = run(args.n, args.dim, args.k, args.batches, args.threads, args.repeats)
    from cliprt.bench.env import load_average

    env["load_average_end"] = load_average()
    report = markdown(rows, env, command.strip())
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
        args.out.with_suffix(".json").write_text(
            json.dumps({"environment": env, "results": rows}, indent=2) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
