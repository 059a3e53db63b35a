"""Accuracy of the `shapes` model: PyTorch reference vs the exported ONNX variants.

    python -m training.evaluate --checkpoint training/shapes-checkpoint \\
        --model src/cliprt/models/shapes

Figures (all on images never seen in training, drawn from fixed seeds):
- zero-shot accuracy on held-out combos: images of the 8 HELD_OUT colour-shape
  combinations, classified against all 48 colour-shape prompts ("a photo of a red
  circle"); the model never saw these combinations, only their colours and shapes apart.
- zero-shot accuracy on seen combos: the same on fresh images of the 40 training combos.
- text->image recall@1/5: galleries of 96 images, one per (size, colour, shape); each
  caption "a photo of a {size} {colour} {shape}" queries its gallery, and a hit is its
  one matching image among the top k. Averaged over N_GALLERIES galleries.

Writes benchmarks/results/accuracy_shapes.{json,md}. The metric functions need only
numpy and an encoder (`encode_images(list of PIL) / encode_texts(list of str)` returning
L2-normalised rows), so the tests run them on the torch-free runtime.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cliprt import shapes

ZERO_SHOT_SEED = 1001
SEEN_SEED = 1002
GALLERY_SEED = 2000
N_ZERO_SHOT = 400
N_GALLERIES = 5
PRECISIONS = ("fp32", "fp16", "int8")

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"

Encoder = Callable[[Sequence[Any]], np.ndarray]


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def zero_shot_accuracy(
    encode_images: Encoder, encode_texts: Encoder, *, split: shapes.Split, seed: int, n: int
) -> float:
    """Top-1 accuracy of classifying `n` images of `split`'s combos against all 48
    colour-shape prompts (argmax cosine, which is argmax of CLIP's softmax)."""
    images, specs = shapes.generate(n, seed=seed, split=split)
    labels = shapes.label_prompts(shapes.ALL_COMBOS)
    sims = _normalised(encode_images(images)) @ _normalised(encode_texts(labels)).T
    truth = np.array([shapes.ALL_COMBOS.index((s.colour, s.shape)) for s in specs])
    return float(np.mean(sims.argmax(1) == truth))


def retrieval_recall(
    encode_images: Encoder, encode_texts: Encoder, *, seed: int, n_galleries: int
) -> dict[str, float]:
    """Text->image recall@1 and @5 over `n_galleries` galleries of 96 (see module doc)."""
    hits1, hits5 = [], []
    for g in range(n_galleries):
        images, specs = shapes.gallery(seed=seed + g)
        queries = [s.caption(0) for s in specs]  # "a photo of a {size} {colour} {shape}"
        sims = _normalised(encode_texts(queries)) @ _normalised(encode_images(images)).T
        rank = (sims > sims[np.arange(len(specs)), np.arange(len(specs))][:, None]).sum(1)
        hits1.append(rank < 1)
        hits5.append(rank < 5)
    return {
        "recall@1": float(np.mean(np.concatenate(hits1))),
        "recall@5": float(np.mean(np.concatenate(hits5))),
    }


def evaluate(encode_images: Encoder, encode_texts: Encoder) -> dict[str, float]:
    """All accuracy figures of one encoder pair (fractions in [0, 1])."""
    t0 = time.perf_counter()
    figures = {
        "zero_shot_heldout": zero_shot_accuracy(
            encode_images, encode_texts, split="heldout", seed=ZERO_SHOT_SEED, n=N_ZERO_SHOT
        ),
        "zero_shot_seen": zero_shot_accuracy(
            encode_images, encode_texts, split="train", seed=SEEN_SEED, n=N_ZERO_SHOT
        ),
        **retrieval_recall(encode_images, encode_texts, seed=GALLERY_SEED, n_galleries=N_GALLERIES),
    }
    figures["seconds"] = round(time.perf_counter() - t0, 2)
    return figures


def pytorch_encoders(checkpoint: str | Path, *, threads: int = 2) -> tuple[Encoder, Encoder]:
    """The reference: transformers CLIPModel + CLIPProcessor from the checkpoint folder."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    torch.set_num_threads(threads)
    model = CLIPModel.from_pretrained(str(checkpoint), attn_implementation="eager").eval()
    processor = CLIPProcessor.from_pretrained(str(checkpoint))

    def encode_images(images: Sequence[Any]) -> np.ndarray:
        with torch.no_grad():
            px = processor(images=list(images), return_tensors="pt")["pixel_values"]
            return model.get_image_features(pixel_values=px).numpy()

    def encode_texts(texts: Sequence[str]) -> np.ndarray:
        with torch.no_grad():
            batch = processor(text=list(texts), return_tensors="pt", padding=True)
            return model.get_text_features(**batch).numpy()

    return encode_images, encode_texts


def runtime_encoders(model_folder: str | Path, precision: str) -> tuple[Encoder, Encoder]:
    """cliprt's torch-free runtime on an exported model folder at one precision."""
    import cliprt

    model = cliprt.load(str(model_folder), precision=precision, device="cpu")
    return model.encode_images, model.encode_texts


def markdown_table(results: dict[str, Any]) -> str:
    """The README table of `results` (as written by main)."""
    lines = [
        "| backend | zero-shot, held-out combos | zero-shot, seen combos | text->image R@1 | R@5 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, f in results["backends"].items():
        lines.append(
            f"| {name} | {100 * f['zero_shot_heldout']:.1f}% | {100 * f['zero_shot_seen']:.1f}% "
            f"| {100 * f['recall@1']:.1f}% | {100 * f['recall@5']:.1f}% |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="HF checkpoint folder")
    parser.add_argument("--model", type=Path, default=None, help="exported model folder")
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the tables")
    args = parser.parse_args(argv)

    backends: dict[str, dict[str, float]] = {}
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    if args.checkpoint is not None:
        import torch
        import transformers

        versions |= {"torch": torch.__version__, "transformers": transformers.__version__}
        backends["PyTorch (transformers)"] = evaluate(
            *pytorch_encoders(args.checkpoint, threads=args.threads)
        )
        print("PyTorch", backends["PyTorch (transformers)"], flush=True)
    if args.model is not None:
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
        for precision in args.precisions:
            name = f"cliprt ORT {precision}"
            backends[name] = evaluate(*runtime_encoders(args.model, precision))
            print(name, backends[name], flush=True)

    results = {
        "protocol": {
            "zero_shot": f"{N_ZERO_SHOT} images per split (held-out seed {ZERO_SHOT_SEED}, seen seed {SEEN_SEED}) vs 48 colour-shape prompts, top-1",
            "retrieval": f"{N_GALLERIES} galleries of 96 (seeds {GALLERY_SEED}..{GALLERY_SEED + N_GALLERIES - 1}), query 'a photo of a {{size}} {{colour}} {{shape}}', text->image",
            "held_out_combos": [list(c) for c in shapes.HELD_OUT],
        },
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads},
        "versions": versions,
        "backends": backends,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy_shapes.json").write_text(json.dumps(results, indent=2) + "\n")
    md = [
        "# Accuracy of the `shapes` default model",
        "",
        "Produced by `python -m training.evaluate` (see training/evaluate.py for the protocol).",
        f"Machine: {results['machine']['cpu']}, {args.threads} threads; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + ".",
        "",
        markdown_table(results),
        "",
        "- Held-out combos: " + ", ".join(f"{c} {s}" for c, s in shapes.HELD_OUT) + ".",
        f"- Zero-shot: {results['protocol']['zero_shot']}.",
        f"- Retrieval: {results['protocol']['retrieval']}.",
        "- Chance: 2.1% zero-shot (1 of 48 labels), 1.0% R@1 and 5.2% R@5 (1 of 96 images).",
        "- int8 (dynamic, per-channel MatMul) may differ from fp32 by a few images either way.",
        "",
    ]
    (args.out / "accuracy_shapes.md").write_text("\n".join(md))
    print(markdown_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
