"""cliprt.runtime: load an exported model folder with onnxruntime only (no torch)."""
