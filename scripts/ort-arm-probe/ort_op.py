"""Runs an int8 model (one op from make_ops.py, or a cliprt tower) on a seeded input and
compares the output with a reference: float64 for dq_*.onnx, else the output this script
saved on the x86 host (numpy + onnxruntime only, so it runs in the emulated rootfs).

    python ort_op.py MODEL REF.npy all|none [session.config=value ...]

On x86_64 it saves REF.npy; elsewhere it loads it and prints the difference.
"""

import platform
import re
import sys

import numpy as np
import onnxruntime as ort

model, ref, level, *config = sys.argv[1:]
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.graph_optimization_level = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}[level]
for kv in config:
    key, value = kv.split("=", 1)
    so.add_session_config_entry(key, value)
s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
inp = s.get_inputs()[0]
rng = np.random.default_rng(0)
if inp.type == "tensor(int64)":  # a text tower: token ids
    x = rng.integers(1, 1000, (2, 12)).astype(np.int64)
else:
    x = rng.standard_normal([d if isinstance(d, int) else 2 for d in inp.shape]).astype(np.float32)
y = s.run(None, {inp.name: x})[0].reshape(len(x), -1).astype(np.float64)
dq = re.search(r"dq_(\d+)_(\d+)_(\d+)\.onnx$", model)
tag = f"{platform.machine()} {model.split('/')[-1]} {level} {config}"
if dq:  # DynamicQuantizeMatMul: float64 of the same int8 weights
    _, k, n = (int(v) for v in dq.groups())
    b = np.random.default_rng(1).integers(-127, 128, (k, n), dtype=np.int8)
    exact = x.astype(np.float64) @ (b.astype(np.float64) * 0.01)
    print(tag, "relative error vs float64: %.2e" % (np.abs(y - exact).max() / np.abs(exact).max()))
elif platform.machine() == "x86_64":
    np.save(ref, y)
    print(tag, "saved", ref)
else:
    r = np.load(ref)
    cos = (y * r).sum(1) / np.linalg.norm(y, axis=1) / np.linalg.norm(r, axis=1)
    print(tag, "cosine vs x86", np.round(cos, 6), "max abs diff", np.abs(y - r).max())
