#!/usr/bin/env bash
# The GPU proof of issue #18, run on a lent H100/H200 through the device tool:
#   run(command="bash scripts/gpu/cuda_checks.sh", carry=[".gpupay3"]) after the parts
#   .gpupay0..2 were copied to /tmp/gp/ by earlier calls (a folder in the repo is not kept between calls) on the same warm machine
#   (see shared/GPU.md). The payload is onnxruntime-gpu 1.31.1 (cp312) repacked as .tar.xz
#   with only its sm_90 kernels kept (H100/H200 load sm_90 SASS only; the other
#   architectures' payloads are zeroed so it travels in 64 MiB calls), plus wheels of
#   transformers 4.57.6 / tokenizers 0.22.1 / huggingface_hub 0.36 / optimum(-onnx), the
#   versions the exporter is tested with (the machine's own transformers is 5.x).
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
log="$OUT/gpu.log"
exec > >(tee -a "$log") 2>&1
t0=$(date +%s)
step() { echo "=== [$(( $(date +%s) - t0 ))s] $*"; }

step "payload"
mkdir -p /tmp/gp && cp .gpupay3/* /tmp/gp/ 2>/dev/null
cat /tmp/gp/part_* > /tmp/payload.tar && md5sum /tmp/payload.tar
mkdir -p /tmp/pay /tmp/site && tar xf /tmp/payload.tar -C /tmp/pay || exit 1
tar xJf /tmp/pay/ort90.tar.xz -C /tmp/site || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/pay/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
# onnxruntime-gpu finds CUDA/cuDNN in the nvidia-* wheels beside torch.
sp=$(python3 -c 'import site; print(site.getsitepackages()[0])')
export LD_LIBRARY_PATH=$(find "$sp/nvidia" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd:):${LD_LIBRARY_PATH:-}

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 - <<'PY'
import onnxruntime as ort, torch, transformers, numpy
print("onnxruntime", ort.__version__, ort.__file__)
print("providers", ort.get_available_providers())
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
print("transformers", transformers.__version__, "numpy", numpy.__version__)
print("gpu", torch.cuda.get_device_name(0))
PY
lscpu | grep -E 'Model name|^CPU\(s\)'

step "build cliprt"
python3 -m pip install -q --no-build-isolation --no-deps -Cbuild-dir=/tmp/cliprt-build -e . || exit 1
python3 - <<'PY'
import numpy as np, onnxruntime as ort
# a session that must land on CUDA, before anything else is trusted
from onnx import helper, TensorProto
import onnx
g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]); m.ir_version = 8
s = ort.InferenceSession(m.SerializeToString(), providers=["CUDAExecutionProvider"])
print("probe session providers", s.get_providers(), s.run(None, {"x": np.array([-1, 2], np.float32)}))
PY

step "pytest -m gpu"
python3 -m pytest -m gpu -p no:cacheprovider -q -rA --tb=long tests/runtime/test_cuda.py 2>&1 | tail -150

step "bench ViT-B-32"
timeout 300 cliprt bench random:ViT-B-32 --device cuda --precision fp32,fp16 --batch 1,8,64 \
  --repeats 30 --cold-repeats 2 --out "$OUT/vit-b32-cuda" 2>&1 | tail -60

step "bench ViT-L-14"
left=$(( 470 - ($(date +%s) - t0) ))
if [ "$left" -gt 90 ]; then
  timeout "$left" cliprt bench random:ViT-L-14 --device cuda --precision fp16 --batch 1,64 \
    --repeats 20 --cold-repeats 0 --out "$OUT/vit-l14-cuda" 2>&1 | tail -40
else
  echo "skipped ViT-L-14: ${left}s left"
fi
step "done"
