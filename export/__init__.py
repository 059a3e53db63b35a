"""cliprt.export: a CLIP checkpoint -> a validated model folder of ONNX towers.

Needs the `export` extra (torch, transformers, optimum-onnx, onnx)."""
