"""`cliprt export SRC OUT`: the command-line face of export_model."""

from __future__ import annotations

import argparse
import sys
from typing import Any

_EPILOG = """\
examples:
  cliprt export openai/clip-vit-base-patch32 models/vitb32
  cliprt export ./my-clip-checkpoint models/mine --precision fp32,int8
  cliprt export random:ViT-B-32 /tmp/vitb32 --force
  cliprt export random:tiny /tmp/tiny --gate int8.min_cosine=0.98
  cliprt export hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K models/vith14
  cliprt export ./open_clip_folder models/openclip      # open_clip_config.json + weights
  cliprt export google/siglip-base-patch16-224 models/siglip
  cliprt export random:siglip2-base-patch16-224 /tmp/siglip2 --force
"""


def register(subparsers: Any) -> None:
    """Adds the `export` subcommand."""
    p = subparsers.add_parser(
        "export",
        help="export a CLIP, OpenCLIP or SigLIP checkpoint to a validated ONNX model folder",
        description="Export a checkpoint (a transformers CLIP or SigLIP folder or hub id, an "
        "OpenCLIP folder, hf-hub:ORG/NAME or ARCH/pretrained_tag, or random:NAME such as "
        "random:ViT-B-32, random:openclip-ViT-H-14, random:siglip-base-patch16-224) to a "
        "cliprt model folder: fused ONNX towers in fp32/fp16/int8, each validated against "
        "the family's PyTorch model.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "source", metavar="SRC", help="checkpoint folder, hub id, OpenCLIP name or random:NAME"
    )
    p.add_argument("out", metavar="OUT", help="model folder to create")
    p.add_argument(
        "--precision",
        default="fp32,fp16,int8",
        help="comma-separated variants to build (default: fp32,fp16,int8)",
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument(
        "--gate",
        action="append",
        default=[],
        metavar="PRECISION.METRIC=VALUE",
        help="override a parity gate, e.g. int8.min_cosine=0.98 or fp32.max_abs_diff=1e-3 "
        "(defaults: fp32.max_abs_diff=1e-4, fp16.min_cosine=0.999, int8.min_cosine=0.99)",
    )
    p.add_argument(
        "--int8-keep-projection",
        action="store_true",
        help="keep the final projection MatMul of each tower in fp32 in the int8 variant",
    )
    p.add_argument(
        "--int8-formulation",
        choices=("static", "dynamic"),
        default="static",
        help="static (default): calibrated activation scales, batch-invariant; dynamic: "
        "per-run scales, an embedding moves with its batch mates "
        "(benchmarks/results/int8-formulations.md)",
    )
    reduce = p.add_mutually_exclusive_group()
    reduce.add_argument(
        "--int8-reduce-range",
        dest="reduce_range",
        action="store_true",
        default=None,
        help="7-bit int8 weights (default: on for x86 CPUs without VNNI)",
    )
    reduce.add_argument(
        "--no-int8-reduce-range", dest="reduce_range", action="store_false", help="8-bit weights"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no per-stage progress lines")
    p.set_defaults(handler=run)


def _parse_gates(items: list[str]) -> dict[str, str]:
    from cliprt.errors import ExportError

    gates = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise ExportError(
                f"--gate {item!r}: expected PRECISION.METRIC=VALUE, e.g. int8.min_cosine=0.98"
            )
        gates[key.strip()] = value.strip()
    return gates


def run(args: argparse.Namespace) -> int:
    """Handler of `cliprt export`; errors propagate as CliprtError (exit status 1)."""
    import dataclasses

    from cliprt.export.int8 import Int8Options
    from cliprt.export.pipeline import export_model, parse_precisions

    precisions = parse_precisions(args.precision)
    gates = _parse_gates(args.gate)
    int8 = Int8Options(formulation=args.int8_formulation)
    if args.reduce_range is not None:
        int8 = dataclasses.replace(int8, reduce_range=args.reduce_range)
    if args.int8_keep_projection:
        int8 = dataclasses.replace(int8, keep_projection=True)

    def progress(line: str) -> None:
        print(f"cliprt export: {line}", file=sys.stderr, flush=True)

    out = export_model(
        args.source,
        args.out,
        precisions=precisions,
        opset=args.opset,
        force=args.force,
        gates=gates,
        int8=int8,
        progress=None if args.quiet else progress,
    )
    print(out)
    return 0
