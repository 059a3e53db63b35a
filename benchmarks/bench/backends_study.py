"""bf16 and OpenVINO backends for the CPU towers, side by side with onnxruntime's CPU EP.

Runs whichever of these the interpreter has, all interleaved in one process on the
files of an int8_study work folder (``int8_study prepare``):

- ort-fp32 / ort-int8: onnxruntime's CPU EP on the fused fp32 file / an int8 candidate;
- ov-f32 / ov-bf16 / ov-int8: OpenVINO directly (``openvino.Core.compile_model`` on the
  same .onnx, INFERENCE_PRECISION_HINT f32 / bf16, PERFORMANCE_HINT LATENCY, one stream);
- ovep-f32 / ovep-bf16: onnxruntime's OpenVINO execution provider (onnxruntime-openvino,
  which replaces the onnxruntime module, so it runs in its own virtual environment).

    python -m cliprt.bench.backends_study --work /tmp/int8-study --out OUT.json
    .venv-ortov/bin/python benchmarks/bench/backends_study.py --work ... --out OUT2.json

Only numpy, onnxruntime and (optionally) openvino: it runs in a bare virtual
environment without cliprt.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from cliprt.bench.env import cpu_description, load_average
from cliprt.bench.timing import measure_interleaved
from cliprt.runtime.vectors import l2_normalize


def _ort(path: Path, threads: int, provider: Any = "CPUExecutionProvider") -> Callable:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    s = ort.InferenceSession(str(path), so, providers=[provider, "CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return lambda x: s.run(None, {name: x})[0]


def _ovep(path: Path, threads: int, precision: str) -> Callable:
    load_config = {"CPU": {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}}
    opts = {
        "device_type": "CPU",
        "num_of_threads": str(threads),
        "load_config": json.dumps(load_config),
    }
    return _ort(path, threads, ("OpenVINOExecutionProvider", opts))


def _ov(path: Path, threads: int, precision: str) -> Callable:
    import openvino as ov

    m = ov.Core().compile_model(
        str(path),
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
            "INFERENCE_NUM_THREADS": threads,
        },
    )
    req = m.create_infer_request()
    return lambda x: req.infer({0: x})[0].copy()


def backends(work: Path, int8: str, threads: int) -> dict[str, dict[str, Callable]]:
    """name -> {"vision": run, "text": run} for every backend importable here."""
    import importlib.util

    import onnxruntime as ort

    out: dict[str, dict[str, Callable]] = {}
    kinds = ("vision", "text")
    fp32 = {k: work / f"{k}.fp32.onnx" for k in kinds}
    raw = {k: work / f"{k}.raw.onnx" for k in kinds}
    q = {k: work / "candidates" / f"{int8}.{k}.onnx" for k in kinds}
    ovep = "OpenVINOExecutionProvider" in ort.get_available_providers()
    out["ort-fp32"] = {k: _ort(fp32[k], threads) for k in kinds}
    if all(p.is_file() for p in q.values()) and not ovep:
        out["ort-int8"] = {k: _ort(q[k], threads) for k in kinds}
    if ovep:
        # The OpenVINO EP's ONNX reader rejects the fused graph's com.microsoft
        # SkipLayerNormalization (it expects 4 outputs); it reads the graph before fusion.
        out["ovep-f32"] = {k: _ovep(raw[k], threads, "f32") for k in kinds}
        out["ovep-bf16"] = {k: _ovep(raw[k], threads, "bf16") for k in kinds}
    elif importlib.util.find_spec("openvino") is not None:
        out["ov-f32"] = {k: _ov(fp32[k], threads, "f32") for k in kinds}
        out["ov-bf16"] = {k: _ov(fp32[k], threads, "bf16") for k in kinds}
        if all(p.is_file() for p in q.values()):
            out["ov-int8"] = {k: _ov(q[k], threads, "f32") for k in kinds}
    return out


def run(work: Path, *, int8: str, threads: int, repeats: int) -> dict[str, Any]:
    import onnxruntime as ort

    data = dict(np.load(work / "inputs.npz"))
    rng = np.random.default_rng(3)
    shapes: dict[str, tuple[str, np.ndarray]] = {
        "vision b1": ("vision", data["calib_pixels"][:1]),
        "vision b8": ("vision", data["calib_pixels"][:8]),
    }
    for b in (8, 32):
        ids = rng.integers(400, 40000, size=(b, 16)).astype(np.int64)
        ids[:, 0], ids[:, -1] = 49406, 49407
        shapes[f"text b{b}"] = ("text", ids)
    t0 = time.perf_counter()
    runs = backends(work, int8, threads)
    print(f"compiled {', '.join(runs)} in {time.perf_counter() - t0:.0f} s", flush=True)
    results: dict[str, Any] = {n: {"p50_ms": {}} for n in runs}
    for name, fns in runs.items():
        for kind in ("vision", "text"):
            x = data["eval_pixels"] if kind == "vision" else data["eval_ids"]
            ref = data["eval_image_ref"] if kind == "vision" else data["eval_text_ref"]
            out = np.concatenate([fns[kind](x[i : i + 8]) for i in range(0, len(x), 8)])
            cos = (l2_normalize(out, dtype=np.float64) * l2_normalize(ref, dtype=np.float64)).sum(
                -1
            )
            drift = max(float(np.abs(fns[kind](x[i : i + 1])[0] - out[i]).max()) for i in range(4))
            results[name][kind] = {"min_cosine": float(cos.min()), "batch_drift": drift}
            print(f"{name} {kind}: min cos {cos.min():.5f}, drift {drift:.1e}", flush=True)
    for shape, (kind, x) in shapes.items():
        # Round-robin, one warm-up round: every backend meets the same spells of load.
        timings = measure_interleaved(
            {n: partial(runs[n][kind], x) for n in runs}, items=len(x), repeats=repeats, warmup=1
        )
        for n in runs:
            results[n]["p50_ms"][shape] = timings[n].p50_ms
        print(shape, {n: round(results[n]["p50_ms"][shape], 1) for n in runs}, flush=True)
    versions = {"onnxruntime": ort.__version__}
    try:
        import openvino

        versions["openvino"] = openvino.__version__
    except ImportError:
        pass
    return {
        "argv": ["python", "-m", "cliprt.bench.backends_study", *sys.argv[1:]],
        "machine": cpu_description()["model"],
        "load_average": load_average(),
        "threads": threads,
        "repeats": repeats,
        "versions": versions,
        "providers": ort.get_available_providers(),
        "backends": results,
    }


def markdown(reports: list[dict[str, Any]], command: str) -> str:
    """One table per report (each is one interleaved run in one environment)."""
    shapes = ["vision b1", "vision b8", "text b8", "text b32"]
    lines = ["# bf16 and OpenVINO backends for the CPU towers (random:ViT-B-32)", ""]
    lines += [f"Command: `{command}`", ""]
    for r in reports:
        base = r["backends"]["ort-fp32"]["p50_ms"]
        lines += [
            f"## {', '.join(f'{k} {v}' for k, v in r['versions'].items())}",
            "",
            f"{r['machine']}, {r['threads']} threads, load average {r['load_average'][0]:.1f} "
            f"(shared box), p50 of {r['repeats']} interleaved calls; speed-up over ort-fp32 "
            "of the same run in brackets.",
            "",
            "| backend | "
            + " | ".join(f"{s} ms" for s in shapes)
            + " | image min cos | text min cos | image drift | text drift |",
            "|---|" + "---|" * (len(shapes) + 4),
        ]
        for name, b in r["backends"].items():
            cells = [f"{b['p50_ms'][s]:.1f} ({base[s] / b['p50_ms'][s]:.2f}x)" for s in shapes]
            lines.append(
                f"| {name} | "
                + " | ".join(cells)
                + f" | {b['vision']['min_cosine']:.5f} | {b['text']['min_cosine']:.5f}"
                f" | {b['vision']['batch_drift']:.1e} | {b['text']['batch_drift']:.1e} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m cliprt.bench.backends_study")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--int8", default="qdq-s8s8", help="the int8 candidate to include")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--markdown",
        nargs="+",
        type=Path,
        default=None,
        help="instead of measuring: merge these JSON reports into the Markdown file --out",
    )
    a = p.parse_args(argv)
    if a.markdown:
        reports = [json.loads(f.read_text()) for f in a.markdown]
        a.out.write_text(markdown(reports, " ".join(reports[0].get("argv", []))) + "\n")
        return
    report = run(a.work, int8=a.int8, threads=a.threads, repeats=a.repeats)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
