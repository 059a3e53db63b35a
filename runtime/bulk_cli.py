"""`cliprt embed` over many images (shards, .npy with ids, failures, resume) and
`cliprt index build`: the bulk face of the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

INDEX_EXAMPLES = """\
examples:
  cliprt embed shapes photos/ -o shards/                 # Parquet shards + failures.jsonl
  cliprt index build shards/ -o photos.cix
  cliprt search shapes --index photos.cix --query "a red circle"
"""


def add_embed_options(p: argparse.ArgumentParser) -> None:
    """The bulk options of `cliprt embed` (images only)."""
    g = p.add_argument_group("bulk image embedding")
    g.add_argument(
        "--files-from",
        metavar="FILE",
        default=None,
        help="also embed the paths listed in FILE, one per line ('-': stdin)",
    )
    g.add_argument(
        "--format",
        choices=("auto", "npy", "parquet"),
        default="auto",
        help="npy: one .npy + <out>.ids.jsonl; parquet: a folder of shards; auto (default): "
        "npy when OUTPUT ends in .npy, else parquet",
    )
    g.add_argument(
        "--on-error",
        choices=("skip", "fail"),
        default="skip",
        help="skip (default): report a bad image and go on; fail: stop at the first one",
    )
    g.add_argument(
        "--failures",
        metavar="PATH",
        default=None,
        help="failures report, JSON lines (default: OUTPUT/failures.jsonl for shards, "
        "OUTPUT.failures.jsonl for .npy)",
    )
    g.add_argument(
        "--shard-size", type=int, default=10_000, help="images per Parquet shard (10000)"
    )
    g.add_argument(
        "--resume", action="store_true", help="skip the finished shards of an earlier run"
    )
    g.add_argument(
        "--log-every",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="seconds between progress lines when stderr is not a terminal (30)",
    )


def embed_images(args: argparse.Namespace, load: Any) -> int:
    """Handler of `cliprt embed` for images: checks inputs and output, then runs the job.

    Args:
        args: the parsed arguments.
        load: makes the ClipModel from `args` (called after the output is checked).
    """
    from cliprt.errors import InputError
    from cliprt.runtime.bulk import NpyJob, ShardedJob
    from cliprt.runtime.sources import ImageSources

    sources = ImageSources(tuple(args.inputs), args.files_from)
    sources.check()
    fmt = args.format
    if fmt == "auto":
        fmt = "npy" if args.output.lower().endswith(".npy") else "parquet"
    if fmt == "npy":
        if args.resume:
            raise InputError("--resume works with Parquet shards; an .npy is written in one go")
        job: NpyJob | ShardedJob = NpyJob(args.output, failures_report=args.failures)
    else:
        job = ShardedJob(
            args.output,
            shard_size=args.shard_size,
            resume=args.resume,
            failures_report=args.failures,
        )
    job.check()
    total = sources.count()
    model = load(args)
    summary = job.run(
        model,
        sources,
        total=total,
        batch_size=args.batch_size,
        errors="raise" if args.on_error == "fail" else "skip",
        progress=not args.quiet,
        log_every_s=args.log_every,
    )
    where = args.output if fmt == "npy" else f"{len(summary.written)} shard(s) in {args.output}"
    skipped = f", {summary.skipped_shards} finished shard(s) kept" if summary.skipped_shards else ""
    print(
        f"embedded {summary.embedded} of {summary.files} images into {where}{skipped} "
        f"({summary.seconds:.1f} s)",
        file=sys.stderr,
    )
    if summary.failed:
        print(
            f"warning: {summary.failed} image(s) could not be embedded; see {summary.failures_report}",
            file=sys.stderr,
        )
    return 0


def register(subparsers: Any) -> None:
    """Adds `cliprt index build`."""
    p = subparsers.add_parser(
        "index",
        help="build an index file from embedding shards",
        description="Index files (.cix) for `cliprt search --index`.",
        epilog=INDEX_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="index_command", metavar="ACTION")
    b = sub.add_parser(
        "build",
        help="stream Parquet shards (or .npy files with ids) into one index file",
        description="Read embedding shards written by `cliprt embed` or cliprt.ray, in the "
        "order given (folders: their part-*.parquet / *.parquet sorted), into one .cix "
        "file that carries each row's path and the model fingerprint. Ids are the rows' "
        "positions 0..n-1.",
        epilog=INDEX_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument(
        "shards", nargs="+", metavar="SHARD", help="Parquet shards, folders of them, or .npy files"
    )
    b.add_argument("-o", "--output", required=True, help="the index file to write (.cix)")
    b.add_argument(
        "--dtype", choices=("fp32", "fp16", "int8"), default="fp32", help="row storage (fp32)"
    )
    b.add_argument(
        "--allow-model-mismatch",
        action="store_true",
        help="accept shards made by different models (their embeddings are not comparable)",
    )
    b.set_defaults(handler=_index_build)
    p.set_defaults(handler=lambda args: p.print_help() or 2)


def _index_build(args: argparse.Namespace) -> int:
    from cliprt.runtime.index_build import build_index_file

    result = build_index_file(
        [Path(s) for s in args.shards],
        Path(args.output),
        dtype=args.dtype,
        allow_model_mismatch=args.allow_model_mismatch,
    )
    fp = result.fingerprint.describe() if result.fingerprint else "unknown model"
    print(
        f"wrote {args.output}: {result.rows} rows of dim {result.dim} ({args.dtype}) from "
        f"{result.files} file(s), model {fp}",
        file=sys.stderr,
    )
    return 0
