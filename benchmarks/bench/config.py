"""What one `cliprt bench` run measures (BenchConfig) and how idle threads wait.

bench_parser (cli.py) is the one place that checks the values: a BenchConfig is made
from its parsed arguments, so it holds only values argparse accepted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

BENCH_TOWERS = ("image", "text")
# bench says image/text (what a user embeds); the manifest says vision/text.
MANIFEST_TOWER = {"image": "vision", "text": "text"}

# How idle worker threads wait, on both sides alike: (onnxruntime spinning,
# OMP_WAIT_POLICY for torch's OpenMP pool). "passive" is the default because a spinning
# OpenMP pool on a busy machine collapses (a 1 ms call taking 400 ms was seen here with
# libgomp's default policy and 2 threads at load 6 on 2 cores); "active" suits a
# dedicated box; "default" leaves both libraries as they come.
WAIT_POLICIES: dict[str, tuple[bool, str | None]] = {
    "passive": (False, "PASSIVE"),
    "active": (True, "ACTIVE"),
    "default": (True, None),
}


@dataclass
class BenchConfig:
    """What to measure. Lists are in the order given on the command line."""

    model: str
    towers: tuple[str, ...] = BENCH_TOWERS
    precisions: tuple[str, ...] = ("fp32", "int8")
    devices: tuple[str, ...] = ("cpu",)
    batches: tuple[int, ...] = (1, 8, 32)
    threads: int = 1
    seq_len: int = 16
    repeats: int = 20
    warmup: int = 3
    cold_repeats: int = 3
    wait_policy: str = "passive"
    reference: str | None = None
    no_reference: bool = False
    memory: bool = True
    # What a user would run instead, timed in the same interleaved calls (baselines.py).
    baselines: tuple[str, ...] = ()
    argv: tuple[str, ...] = field(default_factory=tuple)

    @property
    def spinning(self) -> bool:
        """Whether onnxruntime's idle workers spin (the wait policy's first half)."""
        return WAIT_POLICIES[self.wait_policy][0]

    @property
    def omp_wait_policy(self) -> str | None:
        """OMP_WAIT_POLICY for torch's OpenMP pool; None leaves it as it is."""
        return WAIT_POLICIES[self.wait_policy][1]


@contextmanager
def omp_wait_policy(policy: str | None, *, override: bool = True) -> Iterator[None]:
    """OMP_WAIT_POLICY=`policy` while the block runs, the previous value restored after.

    libgomp reads the variable once, when torch first runs in parallel, so this takes
    effect only for a torch that has not run yet (a fresh `cliprt bench` or `cliprt
    demo` process); the fresh processes of the cold-start probes are given it directly.

    Args:
        policy: "PASSIVE" or "ACTIVE"; None leaves the environment alone.
        override: replace a value the user set (False: keep theirs).
    """
    before = os.environ.get("OMP_WAIT_POLICY")
    if policy is None or (before is not None and not override):
        yield
        return
    os.environ["OMP_WAIT_POLICY"] = policy
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OMP_WAIT_POLICY", None)
        else:
            os.environ["OMP_WAIT_POLICY"] = before
