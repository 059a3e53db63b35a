"""`cliprt bench topk`: the top-k kernel against numpy, PyTorch, FAISS and usearch, in one
run.

Every method searches the same L2-normalised random database (N x D) with the same
queries. Beside each time stand the bytes the method had to read, the GB/s that makes,
and the fraction of the machine's read bandwidth: the read floor of the same rows divided
by the method's time. The floor is the best of several plain reads of those bytes, each
timed in this run (cliprt's multi-threaded stream_read, a numpy reduction, torch.sum where
PyTorch is installed): a floor one method reads slowly would flatter every ratio.
cliprt's one-query cells time each search alternately with every floor method, so both
see the same load. Figures are medians over the repeats; a slow cell stops repeating once
it has used its time budget (its repeat count is reported).

    python -m cliprt.bench.topk_bench --n 100000 1000000 --out benchmarks/results/topk.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
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

# What a method builder returns: search(q), database bytes read, close(), and the read
# methods of its own stored rows (None: the shared per-dtype floor applies).
_Built = tuple[
    Callable[[np.ndarray], object],
    int,
    Callable[[], None],
    dict[str, Callable[[], object]] | None,
]
_TORCH = "torch matmul+topk"

# Seconds one (method, N, batch) cell may spend repeating before it stops at fewer
# repeats than asked: FAISS and numpy need seconds per 256-query call at N = 1M.
_CELL_BUDGET_S = 20.0
_TARGETS = (
    "one query within 1.15x of the read floor (fp32, fp16, int8 rows)",
    "N = 100k, one query: faster than numpy and torch (fp32 rows)",
    "256 queries on int8 rows >= 3x torch fp32 matmul + topk",
    "256 queries on fp32 rows vs torch fp32 matmul + topk (bound by GEMM peak; informational)",
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


def _read_methods(arr: np.ndarray, threads: int) -> dict[str, Callable[[], object]]:
    """Plain reads of every byte of `arr` (contiguous): the candidates for its floor."""
    flat = arr.reshape(-1).view(np.uint8)
    out: dict[str, Callable[[], object]] = {
        "stream_read": lambda: _topk.stream_read(arr, threads=threads),
    }
    if flat.nbytes % 8 == 0:
        words = flat.view(np.uint64)
        out["numpy xor.reduce"] = lambda: np.bitwise_xor.reduce(words)
    try:
        import torch
    except ImportError:
        return out
    if flat.nbytes % 4 == 0:
        # The bytes as float32: torch.sum's vectorized, multi-threaded float path.
        t = torch.from_numpy(flat.view(np.float32))
        out["torch.sum"] = lambda: t.sum()
    return out


def _floor_ms(arr: np.ndarray, threads: int, repeats: int) -> tuple[float, str, dict[str, float]]:
    """The best read floor of arr: (ms, method, every method's median ms), methods
    interleaved per repeat."""
    methods = _read_methods(arr, threads)
    times: dict[str, list[float]] = {m: [] for m in methods}
    for fn in methods.values():
        fn()
    for _ in range(max(1, repeats)):
        for name, fn in methods.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {m: float(np.median(v)) * 1e3 for m, v in times.items()}
    best = min(med, key=med.__getitem__)
    return med[best], best, med


def _paired_median_ms(
    floors: dict[str, Callable[[], object]], fn: Callable[[], object], repeats: int
) -> tuple[float, float, str, int]:
    """Medians (ms) of fn and of every floor read, timed alternately, so all see the same
    load on a shared machine; returns (fn ms, best floor ms, its method, pairs)."""
    for f in floors.values():
        f()
    fn()
    a: dict[str, list[float]] = {m: [] for m in floors}
    b: list[float] = []
    for _ in range(max(1, repeats)):
        for name, f in floors.items():
            t0 = time.perf_counter()
            f()
            a[name].append(time.perf_counter() - t0)
        t1 = time.perf_counter()
        fn()
        b.append(time.perf_counter() - t1)
    med = {m: float(np.median(v)) * 1e3 for m, v in a.items()}
    best = min(med, key=med.__getitem__)
    return float(np.median(b)) * 1e3, med[best], best, len(b)


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
                _read_methods(stored, threads),
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
        import torch

        torch.set_num_threads(threads)

        def torch_build() -> _Built:
            xt = torch.from_numpy(x)

            def run(q: np.ndarray) -> object:
                with torch.inference_mode():
                    return torch.topk(torch.from_numpy(q) @ xt.T, k, dim=1)

            return run, x.nbytes, lambda: None, None

        out.append((_TORCH, "fp32", torch_build))
    except ImportError:
        pass
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


def _floors(x: np.ndarray, threads: int, repeats: int) -> dict[str, tuple[float, str]]:
    """Best read floor (ms, method) of the rows per storage dtype, `threads` threads."""
    scale = np.float32(127.0)
    out = {}
    for dtype in ("fp32", "fp16", "int8"):
        if dtype == "fp32":
            arr = x
        elif dtype == "fp16":
            arr = x.astype(np.float16)
        else:
            arr = np.clip(np.rint(x * scale), -127, 127).astype(np.int8)
        ms, method, _ = _floor_ms(arr, threads, repeats)
        out[dtype] = (ms, method)
        del arr
    return out


def run(
    n_list: Sequence[int],
    dim: int,
    k: int,
    batches: Sequence[int],
    threads: int,
    repeats: int,
    skip: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Times every method on every (N, batch size); returns one dict per cell.

    Each dict: n, dim, k, batch, threads, method, dtype, ms (median), repeats (timed),
    bytes (the database bytes one search reads), gb_s, floor_ms (best read floor of that
    dtype's rows, same run; for cliprt's one-query cells timed alternately with the search
    over the index's own rows), floor_method, floor_fraction (floor_ms / ms), vs_torch
    (torch matmul+topk ms / ms), vs_faiss_flat (FAISS IndexFlatIP ms / ms). Methods whose
    name starts with one of `skip` are left out.
    """
    rows: list[dict[str, Any]] = []
    for n in n_list:
        x = _database(n, dim, seed=n)
        qrng = np.random.default_rng(1)
        queries = {b: _database(b, dim, seed=int(qrng.integers(1 << 31))) for b in batches}
        floors = _floors(x, threads, max(repeats, 5))
        cell_rows: list[dict[str, Any]] = []
        for method, dtype, build in _methods(x, k, threads):
            if any(method.startswith(p) for p in skip):
                continue
            search, nbytes, close, own_floors = build()
            for b in batches:
                floor_ms, floor_method = floors[dtype]
                if b == 1 and own_floors is not None:
                    # Paired with its floors, alternately: the ratio the targets are about.
                    ms, floor_ms, floor_method, done = _paired_median_ms(
                        own_floors, partial(search, queries[b]), max(repeats, 7)
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
                        "ms": round(ms, 4),
                        "repeats": done,
                        "bytes": int(nbytes),
                        "gb_s": round(nbytes / ms / 1e6, 2),
                        "floor_ms": round(floor_ms, 4),
                        "floor_method": floor_method,
                        "floor_fraction": round(floor_ms / ms, 3),
                    }
                )
            close()
            del search
        for base, key in ((_TORCH, "vs_torch"), ("faiss IndexFlatIP", "vs_faiss_flat")):
            ref = {r["batch"]: r["ms"] for r in cell_rows if r["method"] == base}
            for r in cell_rows:
                if r["batch"] in ref:
                    r[key] = round(ref[r["batch"]] / r["ms"], 2)
        rows += cell_rows
        del x
    return rows


def environment(threads: int) -> dict[str, Any]:
    """Machine, ISA, threads and versions beside the figures."""
    from cliprt.bench.env import cpu_description, load_average

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("cliprt", "numpy", "torch", "faiss-cpu", "usearch"):
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
        f"- threads: {env['threads']} for every method (cliprt, torch.set_num_threads, FAISS "
        f"omp, usearch, the floor reads); numpy's BLAS uses its default "
        f"(OPENBLAS_NUM_THREADS={env['blas_threads_env']})",
        f"- cliprt ISA: {env['cliprt_isa']} (available: {', '.join(env['cliprt_isas'])})",
        f"- versions: cliprt {v['cliprt']}, numpy {v['numpy']}, torch {v.get('torch')}, "
        f"faiss-cpu {v['faiss-cpu']}, usearch {v['usearch']}, python {v['python']}",
        f"- date: {env['date_utc']}; load average at start {env['load_average']}, "
        f"at end {env.get('load_average_end')}",
        *(
            f"- earlier run: {e['date_utc']}, threads {e['threads']}, ISA {e['cliprt_isa']}; "
            f"load average at start {e['load_average']}, at end {e.get('load_average_end')}"
            for e in env.get("earlier_runs", [])
        ),
        "",
        "Cells: median ms · GB/s of the rows read · fraction of the read floor "
        "(floor ms / ms; 1.0 = as fast as reading the rows) · speed-up over torch "
        "matmul+topk (fp32) at the same batch size, where torch is installed.",
    ]
    for n in sorted({r["n"] for r in rows}):
        sub = [r for r in rows if r["n"] == n]
        batches = sorted({r["batch"] for r in sub})
        first = sub[0]
        floors = {
            r["dtype"]: (r["floor_ms"], r["floor_method"])
            for r in sub
            if r["method"] == "cliprt" and r["batch"] == min(batches)
        }
        lines += [
            "",
            f"## N = {n:,}, D = {first['dim']}, k = {first['k']}, {first['threads']} threads",
            "",
            "Read floor (best of stream_read, numpy xor.reduce, torch.sum over the same bytes, "
            "same run; cliprt's batch-1 cells time each search alternately with every floor "
            "read of its own rows): "
            + ", ".join(f"{d} {ms:.3g} ms ({m})" for d, (ms, m) in floors.items()),
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
                vs = f" · {r['vs_torch']:.2f}x" if "vs_torch" in r else ""
                reps = "" if r["repeats"] >= 3 else f" (n={r['repeats']})"
                cells.append(
                    f"{r['ms']:.3g} ms{reps} · {r['gb_s']:.1f} GB/s · {r['floor_fraction']:.2f}{vs}"
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
    one = {d: cell("cliprt", d, 1) for d in ("fp32", "fp16", "int8")}
    if all(one.values()):
        ratios = {d: r["ms"] / r["floor_ms"] for d, r in one.items() if r}
        met = all(v <= 1.15 for v in ratios.values())
        text = ", ".join(f"{d} {v:.2f}x" for d, v in ratios.items())
        out.append((_TARGETS[0], f"{text} ({'met' if met else 'MISSED'})"))
    c = cell("cliprt", "fp32", 1)
    np_cell = cell("numpy matmul+argpartition", "fp32", 1)
    t_cell = cell(_TORCH, "fp32", 1)
    if c and c["n"] == 100_000 and np_cell and t_cell:
        a, b = np_cell["ms"] / c["ms"], t_cell["ms"] / c["ms"]
        ok = a > 1 and b > 1
        out.append((_TARGETS[1], f"{a:.2f}x numpy, {b:.2f}x torch ({'met' if ok else 'MISSED'})"))
    r8 = cell("cliprt", "int8", 256)
    if r8 and "vs_torch" in r8:
        ok = r8["vs_torch"] >= 3.0
        out.append((_TARGETS[2], f"{r8['vs_torch']:.2f}x ({'met' if ok else 'MISSED'})"))
    r32 = cell("cliprt", "fp32", 256)
    if r32 and "vs_torch" in r32:
        out.append((_TARGETS[3], f"{r32['vs_torch']:.2f}x"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m cliprt.bench.topk_bench` and `cliprt bench topk`."""
    p = argparse.ArgumentParser(
        prog="cliprt bench topk",
        description="Time cliprt's top-k kernel (fp32, fp16, int8 rows) against numpy, torch "
        "matmul+topk, FAISS (IndexFlatIP, IndexScalarQuantizer fp16 / 8bit) and usearch exact "
        "search, beside the machine's read floor (best of several reads) in the same run.",
    )
    p.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000], help="rows")
    p.add_argument("--dim", type=int, default=512, help="vector length")
    p.add_argument("--k", type=int, default=10, help="hits per query")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256], help="queries")
    p.add_argument("--threads", type=int, default=2, help="threads for every method")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per cell (median)")
    p.add_argument("--out", type=Path, help="write a Markdown report here (and .json beside)")
    p.add_argument(
        "--skip",
        nargs="*",
        default=[],
        metavar="PREFIX",
        help="leave out methods whose name starts with PREFIX (e.g. usearch 'faiss IndexScalar')",
    )
    p.add_argument(
        "--append",
        action="store_true",
        help="add this run's N to the report already at --out (cells of the same N replaced)",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)

    command = "python -m cliprt.bench.topk_bench " + shlex.join(argv)
    env = environment(args.threads)
    rows = run(args.n, args.dim, args.k, args.batches, args.threads, args.repeats, args.skip)
    from cliprt.bench.env import load_average

    env["load_average_end"] = load_average()
    commands = [command.strip()]
    if args.append and args.out and args.out.with_suffix(".json").exists():
        # Another run's cells (other N) join this report; the machine lines stay per run.
        prev = json.loads(args.out.with_suffix(".json").read_text(encoding="utf-8"))
        new_n = {r["n"] for r in rows}
        rows = [r for r in prev["results"] if r["n"] not in new_n] + rows
        commands = prev.get("commands", []) + commands
        earlier = dict(prev["environment"])
        env["earlier_runs"] = [*earlier.pop("earlier_runs", []), earlier]
    report = markdown(rows, env, "`; then `".join(commands))
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
        data = {"environment": env, "commands": commands, "results": rows}
        args.out.with_suffix(".json").write_text(
            json.dumps(data, indent=2) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
