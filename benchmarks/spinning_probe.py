"""What onnxruntime's thread spinning does to a Python process that does other work
between tower calls (tokenizing, decoding JPEGs), as a service or `cliprt embed` does.

    python benchmarks/spinning_probe.py /tmp/vitb32 --precision int8 --rounds 2 \
        --out benchmarks/results/spinning.md

Three settings, each in a fresh process, in rounds that rotate their order:
  never      intra_op.allow_spinning=0 (`cliprt.load(spinning=False)`)
  in-run     allow_spinning=1 + force_spinning_stop=1 (`spinning=True` since this probe)
  always     allow_spinning=1 alone (`spinning=True` before it: threads keep spinning
             after a run ends)
Each process times short texts (1 and 32) and JPEG images (1 and 32) through the model's
own encode calls, 0.5 ms apart (a caller's think time): p50 latency and the process's
CPU time per item.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

SETTINGS = ("never", "in-run", "always")

CHILD = r"""
import io, json, statistics, sys, time
import numpy as np
from PIL import Image
import cliprt
from cliprt.runtime.providers import session_options

folder, precision, setting = sys.argv[1], sys.argv[2], sys.argv[3]
so = session_options(threads=2, spinning=setting != "never")
if setting == "always":
    so.add_session_config_entry("session.force_spinning_stop", "0")
m = cliprt.load(folder, precision=precision, device="cpu", session_options=so)
texts = [f"a photo of a number {i} dog on the grass" for i in range(32)]
rng = np.random.default_rng(0)
jpegs = []
for _ in range(32):
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(buf, "JPEG")
    jpegs.append(buf.getvalue())
cases = [("text x1", lambda: m.encode_texts(texts[:1]), 200, 1),
         ("text x32", lambda: m.encode_texts(texts), 20, 32),
         ("image x1", lambda: m.encode_images(jpegs[:1]), 60, 1),
         ("image x32", lambda: m.encode_images(jpegs), 6, 32)]
out = {}
for name, call, n, items in cases:
    call(); call()
    lat = []
    c0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter(); call(); lat.append(time.perf_counter() - t0)
        time.sleep(0.0005)
    out[name] = {"p50_ms": statistics.median(lat) * 1e3,
                 "cpu_ms_per_item": (time.process_time() - c0) / n / items * 1e3}
print(json.dumps(out))
"""


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="an exported model folder")
    p.add_argument("--precision", default="int8")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    ns = p.parse_args(argv)
    runs: dict[str, list[dict[str, dict[str, float]]]] = {s: [] for s in SETTINGS}
    for r in range(ns.rounds):
        for s in SETTINGS[r % 3 :] + SETTINGS[: r % 3]:
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, ns.model, ns.precision, s],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[s].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {s}: {runs[s][-1]}", file=sys.stderr)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    cases = list(runs[SETTINGS[0]][0])
    lines = [
        f"# onnxruntime spinning, {ns.model} {ns.precision}, 2 threads",
        "",
        f"`python benchmarks/spinning_probe.py {' '.join(argv)}`; {ns.rounds} rounds, fresh "
        f"process each, medians over rounds; `uptime` after: `{uptime}`",
        "",
        "| setting | " + " | ".join(f"{c}: p50 ms / CPU ms per item" for c in cases) + " |",
        "|---|" + "---|" * len(cases),
    ]
    for s in SETTINGS:
        cells = []
        for c in cases:
            p50 = statistics.median(run[c]["p50_ms"] for run in runs[s])
            cpu = statistics.median(run[c]["cpu_ms_per_item"] for run in runs[s])
            cells.append(f"{p50:.2f} / {cpu:.2f}")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if ns.out is not None:
        ns.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
