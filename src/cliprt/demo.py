"""`cliprt demo`: the Quickstart's main job, on the embedded `shapes` model.

1. Export (needs the `export` extra and a clone: the HF checkpoint stays in the source
   tree, training/shapes-checkpoint, not in the wheel) -> a model folder in fp32, fp16
   and int8, each validated against PyTorch.
2. Zero-shot classification (CLIP's first use case): generated images against label
   prompts, probabilities best first.
3. Image search (the second): an Index over generated images, queried by text.
4. A short bench: median latency of image and text embedding at batch 1 and 8,
   PyTorch (transformers CLIPModel, when installed) vs cliprt fp32 and int8, timed call
   by call in turn (the bench harness's measure_interleaved) so that load on a shared
   machine falls on every side alike; the machine's CPUs and load are printed beside.

Without torch (or without the checkpoint) the export and PyTorch parts are skipped (and
say so) and everything else runs on the shipped model folder (models/shapes), so the demo
works on a runtime-only install. Images come from `cliprt.shapes` (Pillow + numpy), written as PNG files.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from cliprt.errors import CliprtError, InputError, ModelFolderError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

    from cliprt.runtime.model import ClipModel
    from cliprt.shapes import ShapeSpec

SHIPPED_MODEL = "shapes"
SHIPPED_CHECKPOINT = "shapes-checkpoint"
EXPORT_HINT = 'pip install "cliprt[export]"'

# Use case 1: a few images and the label sets they are classified against.
_CLASSIFY_SEED = 7
_SEARCH_SEED = 11
_QUERIES = (
    "a photo of a large blue square",
    "a large yellow star",
    "a photo of a red circle",  # red circles were held out of training
    "a green cross on a checkered background",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the `demo` subcommand."""
    p = subparsers.add_parser(
        "demo",
        help="export, classify, search and bench the embedded `shapes` model",
        description="The Quickstart: export the embedded `shapes` CLIP checkpoint (with the "
        "export extra), classify generated images zero-shot, search them by text, and bench "
        "cliprt against PyTorch.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for the exported model and the demo images (default: a temporary one)",
    )
    p.add_argument("--threads", type=int, default=2, help="threads for PyTorch and cliprt (2)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="skip the export (use the shipped folder) and bench with few repetitions",
    )
    p.set_defaults(handler=run)


def _has_export_extra() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "onnx"))


def shipped_path(name: str) -> Path:
    """The folder of a file set shipped inside the package (models/<name>).

    Raises:
        ModelFolderError: the installed package lacks it.
    """
    from cliprt.shipped import shipped_folder

    path = shipped_folder(name)
    if path is None:
        raise ModelFolderError(
            f"the cliprt package has no models/{name} folder; reinstall cliprt "
            "(pip install --force-reinstall cliprt) or pass a model folder to `cliprt classify`"
        )
    return path


def _section(title: str) -> None:
    print(f"\n== {title}", flush=True)


def run(args: argparse.Namespace) -> int:
    """The demo (see the module docstring); returns the exit status."""
    if args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    t_start = time.perf_counter()
    from cliprt.bench.config import omp_wait_policy

    # OMP_WAIT_POLICY=PASSIVE while the demo runs (unless the user set it), restored
    # after: `cliprt bench`'s default. A spinning OpenMP pool (torch's) on a busy machine
    # collapses, 1 ms calls taking 400 ms, which would inflate the PyTorch-vs-cliprt
    # ratios; cliprt's side is loaded with spinning=False to match.
    with (
        tempfile.TemporaryDirectory(prefix="cliprt-demo-") as tmp,
        omp_wait_policy("PASSIVE", override=False),
    ):
        out = Path(args.out) if args.out is not None else Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        _run(args, out)
    print(f"\ndemo done in {time.perf_counter() - t_start:.1f} s")
    return 0


def _run(args: argparse.Namespace, out: Path) -> None:
    import cliprt
    from cliprt.shipped import require_checkpoint

    has_torch = _has_export_extra()
    checkpoint: Path | None = None
    missing = f"needs the export extra: {EXPORT_HINT}"
    if has_torch:
        try:
            checkpoint = require_checkpoint(SHIPPED_CHECKPOINT)
        except ModelFolderError as exc:
            missing = str(exc)
    print("cliprt demo: the embedded `shapes` model, a small CLIP trained on synthetic shapes")
    print(f"  checkpoint: {checkpoint or 'not available'}")

    _section("1. export: HF checkpoint -> ONNX model folder")
    if args.quick or checkpoint is None:
        model_ref: str | Path = SHIPPED_MODEL
        why = "--quick" if checkpoint is not None else missing
        print(f"  skipped ({why}); using the shipped model folder {shipped_path(SHIPPED_MODEL)}")
    else:
        from cliprt.export import export_model

        model_ref = out / "shapes-onnx"
        export_model(
            str(checkpoint),
            model_ref,
            precisions=("fp32", "fp16", "int8"),
            force=True,
            progress=lambda line: print(f"  {line}", flush=True),
        )
        print(f"  -> {model_ref}")

    model = cliprt.load(model_ref, precision="fp32", device="cpu", threads=args.threads)
    _classify(model, out)
    _search(model, out)
    _bench(model_ref, checkpoint, args.threads, quick=args.quick)
    if checkpoint is None:
        print(f"\nexport and the PyTorch comparison skipped: {missing}")


def _write_images(images: list[Image.Image], folder: Path, stem: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(images):
        path = folder / f"{stem}-{i:02d}.png"
        im.save(path)
        paths.append(path)
    return paths


def _classify(model: ClipModel, out: Path) -> None:
    import numpy as np

    from cliprt import shapes

    _section("2. zero-shot classification (images vs label prompts)")
    wanted = [
        ("red", "circle", "large"),  # held out of training
        ("blue", "square", "small"),
        ("purple", "diamond", "large"),  # held out of training
        ("green", "triangle", "small"),
    ]
    rng = np.random.default_rng(_CLASSIFY_SEED)
    specs = [shapes.sample_spec(rng, colour=c, shape=s, size=z) for c, s, z in wanted]
    paths = _write_images([shapes.render(s) for s in specs], out / "images", "classify")
    labels = shapes.label_prompts()
    probs = model.classify(paths, labels)
    small_set = ["a photo of a circle", "a photo of a square", "a photo of a triangle"]
    small_set += ["a photo of a star", "a photo of a cross", "a photo of a diamond"]
    probs_small = model.classify(paths, small_set)
    correct = 0
    for spec, path, p, q in zip(specs, paths, probs, probs_small, strict=True):
        held = (
            " (combination held out of training)"
            if (spec.colour, spec.shape) in shapes.HELD_OUT
            else ""
        )
        print(f"\n  {path.name}: {spec.caption(4)}{held}")
        print("    48 colour-shape labels, top 3:")
        for j in np.argsort(-p)[:3]:
            print(f"      {p[j]:6.1%}  {labels[j]}")
        best = labels[int(np.argmax(p))]
        ok = best == spec.label()
        correct += ok
        print(f"    best label: {best}  [{'right' if ok else 'wrong'}]")
        shape_best = int(np.argmax(q))
        print(f"    6 shape labels: best {small_set[shape_best]!r} ({q[shape_best]:.1%})")
    print(f"\n  {correct}/{len(specs)} images got their colour-shape label")


def _search(model: ClipModel, out: Path) -> None:
    from cliprt import shapes

    _section("3. image search (text -> images)")
    images, specs = shapes.generate(50, seed=_SEARCH_SEED, split="all")
    paths = _write_images(images, out / "images", "search")
    t0 = time.perf_counter()
    index = model.build_index(paths)
    print(f"  indexed {len(index)} generated images in {time.perf_counter() - t0:.2f} s")
    scores, ids = model.search(index, texts=list(_QUERIES), k=3)
    print("  (match: the image is what the query says)")
    for query, row_s, row_i in zip(_QUERIES, scores, ids, strict=True):
        print(f"\n  query: {query!r}")
        for s, i in zip(row_s, row_i, strict=True):
            spec = specs[int(i)]
            mark = "match" if _matches(query, spec) else "     "
            print(f"    {s:.3f}  {mark}  {paths[int(i)].name}  {spec.caption(4)}")


def _matches(query: str, spec: ShapeSpec) -> bool:
    """Whether every size, colour, shape and background word of `query` fits `spec`."""
    from cliprt import shapes

    vocabulary = {*shapes.SIZES, *shapes.COLOURS, *shapes.SHAPES, *shapes.BACKGROUNDS}
    stated = set(query.split()) & vocabulary
    return stated <= {spec.size, spec.colour, spec.shape, spec.background}


def _bench(model_ref: str | Path, checkpoint: Path | None, threads: int, *, quick: bool) -> None:
    import cliprt
    from cliprt import shapes
    from cliprt.bench.env import load_average
    from cliprt.bench.timing import measure_interleaved

    _section(f"4. bench: median latency, ms ({threads} thread{'s' * (threads > 1)}, CPU)")
    reps = 5 if quick else 30
    images, specs = shapes.generate(8, seed=3)
    texts = [s.caption(0) for s in specs]
    cases = [(f"image x{b}", "image", b) for b in (1, 8)] + [
        (f"text x{b}", "text", b) for b in (1, 8)
    ]
    # name -> kind ("image" / "text") -> fn(batch)
    sides: dict[str, dict[str, Callable[[int], object]]] = {}
    if checkpoint is not None:
        sides["PyTorch"] = _pytorch_fns(checkpoint, threads, images, texts)
    for precision in ("fp32", "int8"):
        # No spinning: idle onnxruntime threads would spin through the PyTorch calls that
        # run between theirs and take its CPU.
        model = cliprt.load(
            model_ref, precision=precision, device="cpu", threads=threads, spinning=False
        )
        sides[f"cliprt {precision}"] = {
            "image": partial(_encode_images, model, images),
            "text": partial(_encode_texts, model, texts),
        }
    load_before = load_average()
    columns: dict[str, dict[str, float]] = {name: {} for name in sides}
    for case, kind, b in cases:
        # Round-robin: each side's i-th call runs before anyone's (i+1)-th, so on a shared
        # machine every side meets the same spells of load and the ratios stay honest.
        timings = measure_interleaved(
            {name: partial(fns[kind], b) for name, fns in sides.items()},
            items=b,
            repeats=reps,
            warmup=1,
        )
        for name, timing in timings.items():
            columns[name][case] = timing.p50_ms
    header = f"  {'':10s}" + "".join(f"{c:>14s}" for c in columns)
    if "PyTorch" in columns:
        header += "".join(f"{'x ' + c.split()[-1]:>10s}" for c in columns if c != "PyTorch")
    print(header)
    for name, _, _ in cases:
        row = f"  {name:10s}" + "".join(f"{columns[c][name]:14.2f}" for c in columns)
        if "PyTorch" in columns:
            ref = columns["PyTorch"][name]
            row += "".join(f"{ref / columns[c][name]:9.1f}x" for c in columns if c != "PyTorch")
        print(row)
    print(
        f"  (medians of {reps} calls each, the sides interleaved call by call; each includes "
        "preprocessing/tokenization)"
    )
    if "PyTorch" in columns:
        print("  x N = PyTorch median / cliprt median, for this small model on this machine")
    else:
        print("  PyTorch column skipped: needs the export extra and the checkpoint (see above)")
    print(f"  {_machine_line(load_before, load_average())}")


def _encode_images(model: ClipModel, images: list[Image.Image], b: int) -> np.ndarray:
    return model.encode_images(images[:b])


def _encode_texts(model: ClipModel, texts: list[str], b: int) -> np.ndarray:
    return model.encode_texts(texts[:b])


def _machine_line(before: list[float] | None, after: list[float] | None) -> str:
    """The CPU count and the 1-minute load average around the bench; a warning where the
    machine was busier than its CPUs, since then no figure above is steady."""
    from cliprt.bench.env import cpu_description

    cpus = cpu_description()["usable_cores"]
    if before is None or after is None:
        return f"machine: {cpus} usable CPUs"
    line = f"machine: {cpus} usable CPUs, load average {before[0]:.1f} -> {after[0]:.1f}"
    if max(before[0], after[0]) > (cpus or 1):
        line += " (busy: other work shared the CPUs; expect noisy figures)"
    return line


def _pytorch_fns(
    checkpoint: Path, threads: int, images: list[Image.Image], texts: list[str]
) -> dict[str, Callable[[int], torch.Tensor]]:
    """The reference: transformers' CLIPModel with its own processor and tokenizer."""
    import torch
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

    torch.set_num_threads(threads)
    model = CLIPModel.from_pretrained(str(checkpoint), dtype=torch.float32).eval()
    processor = CLIPImageProcessor.from_pretrained(str(checkpoint))
    tokenizer = CLIPTokenizerFast.from_pretrained(str(checkpoint))

    def image(b: int) -> torch.Tensor:
        with torch.inference_mode():
            px = processor(images=images[:b], return_tensors="pt")["pixel_values"]
            return model.get_image_features(pixel_values=px)

    def text(b: int) -> torch.Tensor:
        with torch.inference_mode():
            batch = tokenizer(texts[:b], padding=True, return_tensors="pt")
            return model.get_text_features(**batch)

    return {"image": image, "text": text}


def main(argv: list[str] | None = None) -> int:
    """`python -m cliprt.demo`: the same as `cliprt demo`."""
    parser = argparse.ArgumentParser(prog="cliprt demo")
    sub = parser.add_subparsers()
    register(sub)
    args = parser.parse_args(["demo", *(argv if argv is not None else sys.argv[1:])])
    try:
        return run(args)
    except CliprtError as exc:
        print(f"cliprt demo: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
