"""`cliprt bench MODEL [...]` and `cliprt bench topk [...]`.

`topk` is the kernel engineer's benchmark (cliprt.bench.topk_bench), reached through
this command; every other first argument is a MODEL. The bench subparser takes its
arguments verbatim (its only positional swallows them all) and hands them to the full
parser below or to topk_bench.main, so that `cliprt bench topk --help` and
`cliprt bench MODEL --help` each show their own options.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from cliprt.bench.baselines import BASELINES, DEFAULT_BASELINES
from cliprt.bench.config import WAIT_POLICIES, BenchConfig
from cliprt.errors import CliprtError

_DESCRIPTION = (
    "Measure the cliprt engine against the PyTorch/transformers reference on this machine: "
    "tower latency (p50/p90/p99) and throughput per tower x precision x device x batch, "
    "preprocessing, tokenization and end to end separately, parity, size on disk, peak RSS "
    "and cold start (fresh processes). `cliprt bench topk [...]` runs the top-k kernel "
    "benchmark instead."
)

_EPILOG = """examples:
  cliprt bench random:ViT-B-32 --precision fp32,int8 --batch 1,8 --threads 2 --out results/
  cliprt bench models/vitb32 --reference checkpoints/clip-vit-base-patch32
  cliprt bench models/vitb32 --no-reference --towers text
  cliprt bench topk --help
  cliprt bench serve --help"""


def _csv(kind: type, name: str):
    def parse(text: str) -> tuple:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{name}: empty list")
        try:
            return tuple(kind(t) for t in items)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name}: {text!r} is not a comma-separated list of {kind.__name__}"
            ) from None

    return parse


def _choices(name: str, allowed: Sequence[str]):
    base = _csv(str, name)

    def parse(text: str) -> tuple:
        items = tuple(t.lower() for t in base(text))
        bad = [t for t in items if t not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(
                f"{name}: unknown {', '.join(bad)}; choose among {', '.join(allowed)}"
            )
        return tuple(dict.fromkeys(items))

    return parse


def _positive(name: str, *, minimum: int = 1):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: {text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}, got {value}")
        return value

    return parse


def _batches(text: str) -> tuple[int, ...]:
    sizes = _csv(int, "--batch")(text)
    if any(b < 1 for b in sizes):
        raise argparse.ArgumentTypeError(f"--batch: sizes must be >= 1, got {text!r}")
    return tuple(sorted(set(sizes)))


def bench_parser() -> argparse.ArgumentParser:
    """The parser of `cliprt bench MODEL [options]`."""
    p = argparse.ArgumentParser(
        prog="cliprt bench",
        description=textwrap.fill(_DESCRIPTION, 88),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        help="an exported cliprt model folder or a shipped model name (shapes), a HF CLIP checkpoint folder, a hub id, or "
        "random:ViT-B-32 (random:ARCH); the last three are exported to a temporary folder first",
    )
    p.add_argument(
        "--towers",
        type=_choices("--towers", ("image", "text")),
        default=("image", "text"),
        help="towers to measure (default: image,text)",
    )
    p.add_argument(
        "--precision",
        type=_choices("--precision", ("fp32", "fp16", "int8", "bf16")),
        default=("fp32", "int8"),
        help="engine precisions (default: fp32,int8; fp16 is for CUDA and slow on CPU; bf16 "
        "needs a bf16 CPU and OpenVINO on x86)",
    )
    p.add_argument(
        "--baselines",
        type=_choices("--baselines", (*BASELINES, "none")),
        default=DEFAULT_BASELINES,
        help="what a user would run instead, timed in the same interleaved calls on the CPU: "
        f"any of {','.join(BASELINES)} (default: {','.join(DEFAULT_BASELINES)}; torch-bf16 "
        "only where the CPU has bf16; torch-compile compiles for minutes); 'none' for none",
    )
    p.add_argument(
        "--device",
        type=_choices("--device", ("cpu", "cuda")),
        default=("cpu",),
        help="devices (default: cpu); an unavailable one is skipped with its reason",
    )
    p.add_argument(
        "--batch", type=_batches, default=(1, 8, 32), help="batch sizes (default: 1,8,32)"
    )
    p.add_argument(
        "--threads",
        type=_positive("--threads"),
        default=None,
        help="onnxruntime intra-op threads = torch.set_num_threads (default: physical cores)",
    )
    p.add_argument(
        "--seq-len",
        type=_positive("--seq-len", minimum=3),
        default=16,
        help="tokens per prompt, BOS and EOS included (default: 16)",
    )
    p.add_argument(
        "--repeats",
        type=_positive("--repeats"),
        default=20,
        help="timed calls per row (default: 20)",
    )
    p.add_argument(
        "--warmup",
        type=_positive("--warmup", minimum=0),
        default=3,
        help="untimed calls before each row (default: 3)",
    )
    p.add_argument(
        "--cold-repeats",
        type=_positive("--cold-repeats", minimum=0),
        default=3,
        help="fresh processes per side for cold start and peak RSS (default: 3; 0 skips)",
    )
    p.add_argument(
        "--wait-policy",
        choices=tuple(WAIT_POLICIES),
        default="passive",
        help="how idle threads wait, on both sides alike: passive (default; onnxruntime "
        "without spinning, OMP_WAIT_POLICY=PASSIVE: robust on a shared machine), active "
        "(spinning, OMP_WAIT_POLICY=ACTIVE: a dedicated box), default (libraries as they come)",
    )
    ref = p.add_mutually_exclusive_group()
    ref.add_argument(
        "--reference",
        metavar="CHECKPOINT",
        default=None,
        help="HF checkpoint (folder or hub id) to compare with, when MODEL is an exported "
        "folder whose manifest source is not available here",
    )
    ref.add_argument(
        "--no-reference",
        action="store_true",
        help="measure the engine alone (torch is then never imported)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write bench.json (every figure), bench.md and bench.png here",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def config_from_args(ns: argparse.Namespace, argv: Sequence[str]) -> BenchConfig:
    from cliprt.bench.env import physical_cores

    return BenchConfig(
        model=ns.model,
        towers=ns.towers,
        precisions=ns.precision,
        devices=ns.device,
        batches=ns.batch,
        threads=ns.threads or physical_cores(),
        seq_len=ns.seq_len,
        repeats=ns.repeats,
        warmup=ns.warmup,
        cold_repeats=ns.cold_repeats,
        wait_policy=ns.wait_policy,
        reference=ns.reference,
        no_reference=ns.no_reference,
        baselines=tuple(b for b in ns.baselines if b != "none"),
        argv=("cliprt", "bench", *argv),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `cliprt bench` with `argv` (the arguments after `bench`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "topk":
        return _topk(argv[1:])
    if argv and argv[0] == "serve":
        from cliprt.bench import serve_bench

        return serve_bench.main(argv[1:])
    ns = bench_parser().parse_args(argv)
    if ns.out is not None:
        _check_out(ns.out)
    from cliprt.bench import report, runner
    from cliprt.bench.progress import BenchProgress

    result = runner.run(config_from_args(ns, argv), progress=BenchProgress(quiet=ns.quiet))
    print(report.console(result))
    if ns.out is not None:
        paths = report.write(result, ns.out)
        print("\nwrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _check_out(out: Path) -> None:
    """Refuses --out before the run (minutes) rather than after it: the chart needs
    matplotlib, and the folder must be creatable.

    Raises:
        CliprtError: matplotlib is missing or OUT cannot be created.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise CliprtError(
            f"--out writes bench.png with matplotlib, which cannot be imported ({exc}): "
            'pip install "cliprt[bench]" (or omit --out)'
        ) from None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliprtError(f"--out {str(out)!r} cannot be created ({exc.strerror or exc})") from None


def _topk(argv: list[str]) -> int:
    try:
        from cliprt.bench import topk_bench
    except ImportError as exc:
        raise CliprtError(f"the top-k benchmark is not available in this install ({exc})") from exc
    return int(topk_bench.main(argv) or 0)


def _handler(args: argparse.Namespace) -> int:
    return main(args.bench_args)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `bench` to the `cliprt` command."""
    # prefix_chars="+": every following argument, options included, is a plain string
    # for this subparser; bench_parser() (or topk_bench.main) parses them.
    p = subparsers.add_parser(
        "bench",
        help="measure cliprt against the PyTorch reference (and `bench topk`: the kernel)",
        description=_DESCRIPTION + " Run `cliprt bench --help` for the options.",
        prefix_chars="+",
        add_help=False,
    )
    p.add_argument("bench_args", nargs="*", metavar="MODEL|topk [options]")
    p.set_defaults(handler=_handler)


if __name__ == "__main__":
    sys.exit(main())
