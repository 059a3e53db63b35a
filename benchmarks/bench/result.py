"""The typed result of one `cliprt bench` run: what runner.run returns and report.py,
chart.py read. `BenchResult.to_json()` is the bench.json document (schema cliprt-bench/1):
every raw figure, per-repeat times included.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cliprt.bench.config import BenchConfig
from cliprt.bench.env import Environment
from cliprt.bench.parity import Agreement
from cliprt.bench.timing import Timing

SCHEMA = "cliprt-bench/1"

# JSON values whose shape is another program's: the probes' raw stamps (memory.py's
# child process), the manifest's arch and parity records, torch's GPU memory figures.
Json = Any


@dataclass(frozen=True)
class Row:
    """One timed row: a stage of one tower at one precision, device and batch.

    Attributes:
        stage: "preprocess" / "tokenize" (no precision), "tower" or "e2e".
        precision: the engine's precision; None for the input stages.
        engine, reference: the two sides' timings (reference None without one).
        reference_precision: which reference the engine is compared with.
    """

    stage: str
    tower: str
    precision: str | None
    device: str
    batch: int
    engine: Timing
    reference: Timing | None
    reference_precision: str | None = None

    @property
    def ratio_p50(self) -> float | None:
        """Engine p50 / reference p50 (< 1: cliprt faster)."""
        return None if self.reference is None else self.engine.p50_ms / self.reference.p50_ms

    @property
    def speedup(self) -> float | None:
        """Reference p50 / engine p50 (> 1: cliprt faster)."""
        return None if self.reference is None else self.reference.p50_ms / self.engine.p50_ms

    def to_json(self) -> dict[str, Json]:
        return {
            "stage": self.stage,
            "tower": self.tower,
            "precision": self.precision,
            "device": self.device,
            "batch": self.batch,
            "engine": self.engine.summary(),
            "reference": None if self.reference is None else self.reference.summary(),
            "reference_precision": self.reference_precision,
            "ratio_p50": self.ratio_p50,
            "speedup": self.speedup,
        }


@dataclass(frozen=True)
class ParityRow:
    """Agreement of one engine precision with its reference on the same inputs.

    kind: "tower" (same tensors in) or "e2e" (same files / strings, each side's own
    preprocessing and tokenization)."""

    tower: str
    precision: str
    device: str
    kind: str
    reference_precision: str
    agreement: Agreement

    def to_json(self) -> dict[str, Json]:
        return {
            "tower": self.tower,
            "precision": self.precision,
            "device": self.device,
            "kind": self.kind,
            "reference_precision": self.reference_precision,
            **asdict(self.agreement),
        }


@dataclass(frozen=True)
class BaselineRow:
    """A baseline's tower timing, from the same interleaved calls as the engine's.

    speedup: engine precision -> baseline p50 / engine p50 (> 1: cliprt faster)."""

    tower: str
    device: str
    batch: int
    baseline: str
    timing: Timing
    speedup: dict[str, float]

    def to_json(self) -> dict[str, Json]:
        return {
            "tower": self.tower,
            "device": self.device,
            "batch": self.batch,
            "baseline": self.baseline,
            "timing": self.timing.summary(),
            "speedup": dict(self.speedup),
        }


@dataclass(frozen=True)
class Skipped:
    """Something not measured, and why."""

    what: str
    reason: str


@dataclass(frozen=True)
class MemoryProbe:
    """One fresh-process probe (memory.probe): cold start and peak RSS of one side.

    Times in ms from the launch of the process, sizes in bytes."""

    side: str
    precision: str
    device: str
    import_ms: float
    load_ms: float
    cold_start_image_ms: float
    cold_start_text_ms: float
    process_wall_ms: float
    peak_rss_bytes: int
    rss_end_bytes: int | None
    gpu_process_bytes: int | None
    gpu_torch: Json
    torch_imported: bool
    stamps: dict[str, Json]
    launch_time: float
    repeat: int
    batch: int


@dataclass(frozen=True)
class ImageInfo:
    """One of the generated JPEG inputs."""

    file: str
    width: int
    height: int
    bytes: int


@dataclass(frozen=True)
class InputsInfo:
    images: list[ImageInfo]
    texts: list[str]
    seq_len: int


@dataclass(frozen=True)
class ExportRecord:
    """The export a run made first (for a checkpoint, hub id or random:ARCH MODEL)."""

    source: str
    seconds: float
    precisions: list[str]


@dataclass(frozen=True)
class ModelInfo:
    """The measured model: what it is, where it came from, its sizes in bytes."""

    arg: str
    folder: str
    source: str
    embed_dim: int
    image_size: int
    context_length: int
    arch: dict[str, Json]
    reference: str | None
    reference_note: str
    export: ExportRecord | None
    manifest_parity: dict[str, dict[str, dict[str, Json] | None]]
    engine_tower_bytes: dict[str, dict[str, int]]
    engine_total_bytes: dict[str, int]
    reference_checkpoint_bytes: int | None


@dataclass
class Measurements:
    """What the measurement loop collects (measure.py), in the order it ran."""

    rows: list[Row] = field(default_factory=list)
    parity: list[ParityRow] = field(default_factory=list)
    baselines: list[BaselineRow] = field(default_factory=list)
    gpu_memory_reference: list[dict[str, Json]] = field(default_factory=list)
    token_ids_equal: bool | None = None
    skipped: list[Skipped] = field(default_factory=list)


@dataclass(frozen=True)
class BenchResult:
    """Every figure of one run (see the module docstring)."""

    config: BenchConfig
    env: Environment
    model: ModelInfo
    inputs: InputsInfo
    measured: Measurements
    memory: list[MemoryProbe]
    notes: list[str]
    devices_run: list[str]
    torch_imported: bool
    wall_s: float

    @property
    def rows(self) -> list[Row]:
        return self.measured.rows

    @property
    def parity(self) -> list[ParityRow]:
        return self.measured.parity

    @property
    def baselines(self) -> list[BaselineRow]:
        return self.measured.baselines

    @property
    def skipped(self) -> list[Skipped]:
        return self.measured.skipped

    @property
    def token_ids_equal(self) -> bool | None:
        return self.measured.token_ids_equal

    def to_json(self) -> dict[str, Json]:
        """The bench.json document (key order and names as schema cliprt-bench/1)."""
        m = self.measured
        return {
            "schema": SCHEMA,
            "argv": list(self.config.argv),
            "config": asdict(self.config),
            "env": self.env,
            "model": asdict(self.model),
            "inputs": asdict(self.inputs),
            "rows": [r.to_json() for r in m.rows],
            "parity": [p.to_json() for p in m.parity],
            "baselines": [b.to_json() for b in m.baselines],
            "memory": [asdict(p) for p in self.memory],
            "gpu_memory_reference": m.gpu_memory_reference,
            "token_ids_equal": m.token_ids_equal,
            "skipped": [asdict(s) for s in m.skipped],
            "notes": list(self.notes),
            "devices_run": list(self.devices_run),
            "torch_imported": self.torch_imported,
            "wall_s": self.wall_s,
        }
