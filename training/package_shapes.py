"""Packages a trained `shapes` checkpoint into cliprt: the shipped checkpoint, its
exported model folder, the accuracy table and the figures json.

    python -m training.package_shapes training/out/shapes-checkpoint

1. training/shapes-checkpoint/: the HF checkpoint, kept in the repository and out of
   the wheel (it needs torch; cliprt.shipped finds it from a clone). Weights are
   stored in fp16 (half the bytes; transformers loads them as fp32 when asked, as
   cliprt's exporter does) and only tokenizer.json of the tokenizer files
   (CLIPTokenizerFast needs no vocab.json/merges.txt); tokenizer.json and
   preprocessor_config.json are relative symlinks to the model folder's identical
   copies. This *is* the model: every figure below is measured on it, not on the fp32
   training output.
2. src/cliprt/models/shapes/: `cliprt.export.export_model` of that checkpoint, fp32,
   fp16 and int8, what `cliprt.load("shapes")` opens.
3. benchmarks/results/accuracy_shapes.{md,json} (training.evaluate) and
   training/shapes_figures.json: training figures, accuracy per backend, sizes in bytes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "src" / "cliprt" / "models"
CHECKPOINT_OUT = REPO / "training" / "shapes-checkpoint"
MODEL_OUT = MODELS / "shapes"
FIGURES = REPO / "training" / "shapes_figures.json"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# Files the exported model folder copies verbatim from the checkpoint: one copy each.
_SHARED_FILES = ("tokenizer.json", "preprocessor_config.json")


def ship_checkpoint(trained: Path, out: Path = CHECKPOINT_OUT) -> Path:
    """Writes the shipped HF checkpoint (fp16 weights, tokenizer.json) from `trained`."""
    import torch
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(str(trained), dtype=torch.float32)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    model.half().save_pretrained(str(out), safe_serialization=True)
    for name in (*_TOKENIZER_FILES, "preprocessor_config.json"):
        shutil.copy2(trained / name, out / name)
    return out


def link_shared_files(checkpoint: Path, model_folder: Path) -> None:
    """Replaces the checkpoint's copies of _SHARED_FILES by relative symlinks to the
    model folder's (byte-identical: the exporter copied them)."""
    for name in _SHARED_FILES:
        ours, theirs = checkpoint / name, model_folder / name
        if ours.read_bytes() != theirs.read_bytes():
            raise SystemExit(f"{ours} differs from {theirs}; the export did not copy it")
        ours.unlink()
        ours.symlink_to(os.path.relpath(theirs, checkpoint))


def folder_bytes(folder: Path) -> dict[str, int]:
    """Size in bytes of each file of `folder` (symlinks are not counted: one copy)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.is_symlink())
    return {p.name: p.stat().st_size for p in files}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trained", type=Path, help="checkpoint folder written by train_shapes_clip")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    from cliprt.export import export_model
    from cliprt.manifest import read_manifest, write_manifest
    from training import evaluate

    checkpoint = ship_checkpoint(args.trained)
    print(f"checkpoint -> {checkpoint}", flush=True)
    export_model(
        str(checkpoint),
        MODEL_OUT,
        precisions=("fp32", "fp16", "int8"),
        force=True,
        progress=lambda line: print(f"  export: {line}", flush=True),
    )
    # The manifest's source names the shipped checkpoint, not this machine's path to it:
    # "cliprt:NAME" is found by cliprt.shipped (the package, else the source tree).
    manifest = read_manifest(MODEL_OUT)
    write_manifest(MODEL_OUT, dataclasses.replace(manifest, source=f"cliprt:{checkpoint.name}"))
    link_shared_files(checkpoint, MODEL_OUT)
    evaluate.main(
        ["--checkpoint", str(checkpoint), "--model", str(MODEL_OUT), "--threads", str(args.threads)]
    )
    accuracy = json.loads((evaluate.RESULTS / "accuracy_shapes.json").read_text())
    train_figures_path = args.trained / "train_figures.json"
    train: dict[str, Any] = (
        json.loads(train_figures_path.read_text()) if train_figures_path.is_file() else {}
    )
    sizes = {"shapes-checkpoint": folder_bytes(checkpoint), "shapes": folder_bytes(MODEL_OUT)}
    total = sum(sum(f.values()) for f in sizes.values())
    figures = {
        "training": train,
        "accuracy": accuracy["backends"],
        "accuracy_protocol": accuracy["protocol"],
        "shipped_bytes": {"total": total, **sizes},
    }
    FIGURES.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"shipped: {total / 1e6:.1f} MB in {MODELS}; figures -> {FIGURES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
