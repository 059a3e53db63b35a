"""`cliprt embed | classify | search`: the command-line face of the runtime."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from cliprt.runtime import bulk_cli
from cliprt.runtime.sources import IMAGE_SUFFIXES

# Inputs from which on a progress line is drawn on stderr (unless --quiet).
PROGRESS_FROM = 64

_EXAMPLES = {
    "embed": """\
examples:
  cliprt embed shapes photos/*.jpg -o images.npy     # + images.npy.ids.jsonl
  cliprt embed shapes photos/ -o shards/ --resume    # Parquet shards, resumable
  cliprt embed shapes --files-from list.txt -o shards/ --on-error skip
  cliprt embed shapes --text "a red circle" "a blue square" -o texts.npy
""",
    "classify": """\
examples:
  cliprt classify shapes cat.jpg dog.jpg --labels "a photo of a cat" "a photo of a dog"
""",
    "verify": """\
examples:
  cliprt verify shapes                      # the precision cliprt.load picks here
  cliprt verify models/vitb32 --precision int8
  cliprt verify models/vitb32 --precision all
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
    p.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="image files, folders, glob patterns, or texts"
    )
    # nargs="*": `--text "a cat" "a dog"` takes the texts itself, because a "*" INPUT
    # positional would already have been matched (empty) before the flag.
    p.add_argument(
        "--text",
        nargs="*",
        default=None,
        metavar="TEXT",
        help="embed texts (the INPUTs and TEXTs), not images",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="the .npy file (exactly this path; - for stdout with --text), or the folder of Parquet shards",
    )
    bulk_cli.add_embed_options(p)
    p.set_defaults(handler=_embed)

    p = subparsers.add_parser(
        "classify",
        help="zero-shot classify images against label texts",
        description="Print each image's labels with the model family's probabilities, "
        "best first: CLIP/OpenCLIP softmax of logit_scale x cosine over the labels; SigLIP "
        "sigmoid(logit_scale x cosine + logit_bias) per label.",
        epilog=_EXAMPLES["classify"],
        formatter_class=raw,
    )
    _common(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    p.add_argument("--labels", nargs="+", required=True, help="label texts")
    p.add_argument("--top", type=int, default=None, help="print only the best N labels (N >= 1)")
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
        help="index file: loaded if it exists, else built from --images and saved (one "
        "file that holds the paths and the model's fingerprint)",
    )
    p.add_argument(
        "--allow-model-mismatch",
        action="store_true",
        help="search an index built by another model (normally an error)",
    )
    p.set_defaults(handler=_search)

    p = subparsers.add_parser(
        "verify",
        help="check on this device that the model computes what the exporter validated",
        description="Recompute the probe images and texts recorded in the manifest at export "
        "and compare them with the PyTorch reference embeddings (min cosine, max abs diff per "
        "tower) under the export's gates. Exit status 1 when a gate fails.",
        epilog=_EXAMPLES["verify"],
        formatter_class=raw,
    )
    p.add_argument("model", metavar="MODEL", help="model folder or shipped model name (shapes)")
    p.add_argument("--precision", default="auto", help="fp32 | fp16 | int8 | all | auto (default)")
    p.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto (default)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads per tower")
    p.set_defaults(handler=_verify)


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


def output_problem(output: str) -> str | None:
    """Why `output` cannot be written as a file, checked without creating it (None: it
    can be tried)."""
    path = Path(output)
    if output.endswith(("/", os.sep)) or path.is_dir():
        return "is a folder; pass a file name, e.g. embeddings.npy"
    if path.exists() and not path.is_file():
        return "exists and is not a regular file (a FIFO or device?); pass a file name"
    parent = path.parent
    if not parent.is_dir():
        return f"cannot be created: the folder {str(parent)!r} does not exist"
    return None


@contextmanager
def open_output(output: str, *, what: str = "-o") -> Iterator[BinaryIO]:
    """The output file, opened BEFORE the work (so an unwritable path fails at once),
    written atomically: the path is replaced only once the block ends without an error.
    "-" is stdout (refused where stdout is a terminal: the content is binary).

    Raises:
        InputError: the path is a folder, its folder is missing or not writable, or
            stdout is a terminal.
    """
    from cliprt.errors import InputError
    from cliprt.runtime.atomic import atomic_write

    if output == "-":
        if sys.stdout.isatty():
            raise InputError(
                f"{what} - writes binary .npy data to stdout, which is a terminal; redirect "
                "it (> out.npy) or pass a file name"
            )
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    problem = output_problem(output)
    if problem:
        raise InputError(f"{what} {output!r} {problem}")
    try:
        writer = atomic_write(output)
        f = writer.__enter__()
    except OSError as exc:
        raise InputError(
            f"{what} {output!r} cannot be written ({exc.strerror or exc}); choose a writable path"
        ) from None
    try:
        yield f
    except BaseException:
        writer.__exit__(*sys.exc_info())
        raise
    try:
        writer.__exit__(None, None, None)
    except OSError as exc:
        raise InputError(
            f"{what} {output!r} could not be written ({exc.strerror or exc}); nothing was "
            "replaced, free some space or choose another path"
        ) from None


def _embed(args: argparse.Namespace) -> int:
    import numpy as np

    if args.text is None:
        return bulk_cli.embed_images(args, _load)
    texts = [*args.inputs, *args.text]
    if not texts:
        from cliprt.errors import InputError

        raise InputError("--text needs at least one text")
    with open_output(args.output) as out:
        model = _load(args)
        emb = model.encode_texts(texts, progress=not args.quiet and len(texts) >= PROGRESS_FROM)
        np.save(out, emb)
    where = "stdout" if args.output == "-" else args.output
    print(
        f"wrote {emb.shape[0]} x {emb.shape[1]} float32 embeddings to {where}",
        file=sys.stderr,
    )
    return 0


def _classify(args: argparse.Namespace) -> int:
    import numpy as np

    from cliprt.errors import InputError

    if args.top is not None and args.top < 1:
        raise InputError(f"--top must be at least 1, got {args.top}; omit it for every label")
    model = _load(args)
    paths = collect_images(args.images)
    probs = model.classify(paths, args.labels, batch_size=args.batch_size)
    top = len(args.labels) if args.top is None else args.top
    for path, row in zip(paths, probs, strict=True):
        print(path)
        for j in np.argsort(-row, kind="stable")[:top]:
            print(f"  {100 * row[j]:6.2f}%  {args.labels[j]}")
    return 0


def _search(args: argparse.Namespace) -> int:
    from cliprt.errors import InputError
    from cliprt.runtime.index import Index

    if args.k < 1:
        raise InputError(f"-k must be at least 1, got {args.k}")
    index_path = Path(args.index) if args.index else None
    if index_path is not None and args.images is not None:
        # Refuse an unwritable --index before embedding every image.
        problem = output_problem(str(index_path)) or _writable_problem(index_path)
        if problem:
            raise InputError(f"--index: {str(index_path)!r} {problem}")
    model = _load(args)
    if index_path is not None and index_path.exists() and args.images is None:
        index = Index.load(index_path)
        names = _index_names(index, index_path)
    elif args.images is not None:
        paths = [str(p) for p in collect_images(args.images)]
        index = model.build_index(
            paths,
            keys=paths,
            batch_size=args.batch_size,
            progress=not args.quiet and len(paths) >= PROGRESS_FROM,
        )
        names = index.keys_of
        if index_path is not None:
            try:
                index.save(index_path)  # one atomic file: rows, paths and model fingerprint
            except OSError as exc:
                raise InputError(
                    f"--index {str(index_path)!r} could not be written ({exc.strerror or exc})"
                ) from None
            print(f"saved the index of {len(paths)} images to {index_path}", file=sys.stderr)
    else:
        raise InputError("search needs --images (to build an index) or an existing --index file")
    scores, ids = model.search(
        index, texts=args.query, k=args.k, allow_model_mismatch=args.allow_model_mismatch
    )
    for query, srow, irow in zip(args.query, scores, ids, strict=True):
        print(f"{query}")
        hits = [int(i) for i in irow if i >= 0]
        for rank, (score, name) in enumerate(zip(srow, names(hits), strict=False), 1):
            print(f"  {rank:2d}. {score:.4f}  {name}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from cliprt.manifest import PRECISIONS, TOWERS, read_manifest
    from cliprt.runtime.model import load, resolve_model
    from cliprt.runtime.verify import verify

    if args.precision == "all":
        manifest = read_manifest(resolve_model(args.model))
        precisions = [p for p in PRECISIONS if all(p in manifest.towers[t] for t in TOWERS)]
    else:
        precisions = [args.precision]
    passed = True
    for precision in precisions:
        model = load(args.model, precision=precision, device=args.device, threads=args.threads)
        with model:
            report = verify(model)
        print(report.text(), flush=True)
        passed = passed and report.passed
    return 0 if passed else 1


def _writable_problem(path: Path) -> str | None:
    """Whether a file can be created in `path`'s folder, tried with a probe file (which
    is what counts, for root and read-only mounts alike)."""
    from cliprt.runtime.atomic import atomic_write

    class _Probe(Exception):
        pass

    try:
        with atomic_write(path.with_name(path.name + ".probe")):
            raise _Probe  # abandon: nothing is renamed, the temp file is removed
    except _Probe:
        return None
    except OSError as exc:
        return f"cannot be written ({exc.strerror or exc}); choose a writable path"


def _read_paths(paths_file: Path | None, index_path: Path, rows: int) -> list[Path]:
    """The image paths saved beside an index, checked against it.

    Raises:
        InputError: missing, unreadable, or not one path per row of the index.
    """
    from cliprt.errors import InputError

    if paths_file is None or not paths_file.is_file():
        raise InputError(
            f"{paths_file} (the image paths of {index_path}) is missing; rebuild with --images"
        )
    try:
        paths = json.loads(paths_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise InputError(
            f"{paths_file} cannot be read ({type(exc).__name__}); rebuild with --images"
        ) from None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise InputError(f"{paths_file} is not a JSON list of paths; rebuild with --images")
    if len(paths) != rows:
        raise InputError(
            f"{paths_file} lists {len(paths)} paths but {index_path} has {rows} rows; they do "
            "not belong together: rebuild with --images"
        )
    return [Path(p) for p in paths]


def _index_names(index: Any, index_path: Path) -> Any:
    """id -> name of a loaded index: its own keys, or for an index written before keys
    existed, the legacy `<index>.paths.json` beside it (checked against the index)."""
    if index.has_keys:
        return index.keys_of
    paths_file = index_path.with_name(index_path.name + ".paths.json")
    paths = _read_paths(paths_file, index_path, len(index))
    return lambda ids: [str(paths[i]) for i in ids]
