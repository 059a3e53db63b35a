"""`cliprt embed | classify | search`: the command-line face of the runtime."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# Inputs from which on a progress line is drawn on stderr (unless --quiet).
PROGRESS_FROM = 64

_EXAMPLES = {
    "embed": """\
examples:
  cliprt embed shapes photos/*.jpg -o images.npy
  cliprt embed shapes --text "a red circle" "a blue square" -o texts.npy
""",
    "classify": """\
examples:
  cliprt classify shapes cat.jpg dog.jpg --labels "a photo of a cat" "a photo of a dog"
""",
    "search": """\
examples:
  cliprt search shapes --images photos/ --query "a red circle" -k 5
  cliprt search shapes --images photos/ --index photos.cix --query "a dog"   # saves the index
  cliprt search shapes --index photos.cix --query "a cat"                    # reuses it
""",
}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="model folder or shipped model name (shapes)")
    p.add_argument("--precision", default="auto", help="fp32 | fp16 | int8 | bf16 | auto (default)")
    p.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads per tower")
    p.add_argument("--batch-size", type=int, default=32, help="images per tower call (32)")
    p.add_argument(
        "--no-exif-transpose",
        dest="exif_transpose",
        action="store_false",
        help="ignore EXIF orientation (as transformers does)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")


def register(subparsers: Any) -> None:
    """Adds the `embed`, `classify` and `search` subcommands."""
    raw = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "embed",
        help="embed images or texts into an .npy file",
        description="Write L2-normalised float32 embeddings (n, D) of images, or of texts "
        "with --text, to an .npy file, in input order.",
        epilog=_EXAMPLES["embed"],
        formatter_class=raw,
    )
    _common(p)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files/folders, or texts")
    p.add_argument("--text", action="store_true", help="INPUTs are texts, not images")
    p.add_argument("-o", "--output", required=True, help="the .npy file to write")
    p.set_defaults(handler=_embed)

    p = subparsers.add_parser(
        "classify",
        help="zero-shot classify images against label texts",
        description="Print each image's labels with CLIP probabilities (softmax of "
        "logit_scale x cosine), best first.",
        epilog=_EXAMPLES["classify"],
        formatter_class=raw,
    )
    _common(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    p.add_argument("--labels", nargs="+", required=True, help="label texts")
    p.add_argument("--top", type=int, default=None, help="print only the best N labels")
    p.set_defaults(handler=_classify)

    p = subparsers.add_parser(
        "search",
        help="search images with a text query",
        description="Embed images into an Index (or load a saved one) and print the top "
        "matches of each query by cosine similarity.",
        epilog=_EXAMPLES["search"],
        formatter_class=raw,
    )
    _common(p)
    p.add_argument("--images", nargs="+", default=None, help="image files or folders")
    p.add_argument("--query", nargs="+", required=True, help="query texts")
    p.add_argument("-k", type=int, default=5, help="matches per query (5)")
    p.add_argument(
        "--index",
        default=None,
        help="index file: loaded if it exists (with its .paths.json), else built and saved",
    )
    p.set_defaults(handler=_search)


def collect_images(inputs: list[str]) -> list[Path]:
    """Files as given, folders expanded to their image files (recursively, sorted)."""
    from cliprt.errors import InputError

    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise InputError(
                    f"folder {item!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})"
                )
            paths.extend(found)
        else:
            paths.append(path)
    return paths


def _load(args: argparse.Namespace) -> Any:
    from cliprt.runtime.model import load

    return load(
        args.model,
        precision=args.precision,
        device=args.device,
        threads=args.threads,
        exif_transpose=args.exif_transpose,
    )


def _embed(args: argparse.Namespace) -> int:
    import numpy as np

    model = _load(args)
    if args.text:
        emb = model.encode_texts(
            args.inputs, progress=not args.quiet and len(args.inputs) >= PROGRESS_FROM
        )
    else:
        paths = collect_images(args.inputs)
        emb = model.encode_images(
            paths,
            batch_size=args.batch_size,
            progress=not args.quiet and len(paths) >= PROGRESS_FROM,
        )
    np.save(args.output, emb)
    print(
        f"wrote {emb.shape[0]} x {emb.shape[1]} float32 embeddings to {args.output}",
        file=sys.stderr,
    )
    return 0


def _classify(args: argparse.Namespace) -> int:
    import numpy as np

    model = _load(args)
    paths = collect_images(args.images)
    probs = model.classify(paths, args.labels, batch_size=args.batch_size)
    top = len(args.labels) if args.top is None else max(1, args.top)
    for path, row in zip(paths, probs, strict=True):
        print(path)
        for j in np.argsort(-row, kind="stable")[:top]:
            print(f"  {100 * row[j]:6.2f}%  {args.labels[j]}")
    return 0


def _search(args: argparse.Namespace) -> int:
    from cliprt.errors import InputError
    from cliprt.runtime.index import Index

    model = _load(args)
    index_path = Path(args.index) if args.index else None
    paths_file = index_path.with_name(index_path.name + ".paths.json") if index_path else None
    if index_path is not None and index_path.exists() and args.images is None:
        index = Index.load(index_path)
        if paths_file is None or not paths_file.is_file():
            raise InputError(
                f"{paths_file} (the image paths of {index_path}) is missing; rebuild with --images"
            )
        paths = [Path(p) for p in json.loads(paths_file.read_text(encoding="utf-8"))]
    elif args.images is not None:
        paths = collect_images(args.images)
        index = model.build_index(
            paths,
            batch_size=args.batch_size,
            progress=not args.quiet and len(paths) >= PROGRESS_FROM,
        )
        if index_path is not None:
            index.save(index_path)
            assert paths_file is not None
            paths_file.write_text(json.dumps([str(p) for p in paths]), encoding="utf-8")
            print(f"saved the index of {len(paths)} images to {index_path}", file=sys.stderr)
    else:
        raise InputError("search needs --images (to build an index) or an existing --index file")
    scores, ids = model.search(index, texts=args.query, k=args.k)
    for query, srow, irow in zip(args.query, scores, ids, strict=True):
        print(f"{query}")
        for rank, (score, i) in enumerate(zip(srow, irow, strict=True), 1):
            if i < 0:
                break
            print(f"  {rank:2d}. {score:.4f}  {paths[i]}")
    return 0
