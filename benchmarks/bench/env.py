"""The environment header printed above every benchmark: machine, ISA, threads, versions.

Versions are read from package metadata, never by importing the package, so that a
--no-reference run stays torch-free.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import TypedDict

# The ISA extensions that decide which onnxruntime / PyTorch kernels run.
_ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "sve",
)

_PACKAGES = ("cliprt", "onnxruntime", "onnxruntime-gpu", "torch", "transformers", "numpy", "pillow")


class CpuDescription(TypedDict):
    """The CPU as the figures depend on it (cpu_description)."""

    model: str
    arch: str
    isa: list[str]  # the _ISA_FLAGS this CPU has
    logical_cores: int
    physical_cores: int | None  # None without psutil
    usable_cores: int  # in this process's affinity mask


class _EnvironmentBase(TypedDict):
    load_average_start: list[float] | None
    wait_policy: str
    omp_wait_policy_env: str | None
    date_utc: str
    host: str
    os: str
    python_executable: str
    cpu: CpuDescription
    threads: int
    gpus: list[str]
    ort_providers: list[str]
    versions: dict[str, str | None]


class Environment(_EnvironmentBase, total=False):
    """The header of a benchmark run (environment()); the keys below are added by the
    benchmark that runs, after it ran."""

    load_average_end: list[float] | None
    torch_loaded_before_policy: bool  # cliprt bench: torch was imported before the policy
    uptime_start: str | None  # cliprt bench serve: `uptime` around the run
    uptime_end: str | None


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if ":" not in line:
                    if info:
                        break  # the first processor block is enough
                    continue
                key, value = line.split(":", 1)
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def cpu_description() -> CpuDescription:
    """CPU model, relevant ISA flags, logical and physical cores, usable cores."""
    info = _cpuinfo()
    model = info.get("model name") or platform.processor() or platform.machine()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    logical = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = logical
    physical = None
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except ImportError:
        pass
    return {
        "model": model,
        "arch": platform.machine(),
        "isa": [f for f in _ISA_FLAGS if f in flags],
        "logical_cores": logical,
        "physical_cores": physical,
        "usable_cores": usable,
    }


def physical_cores() -> int:
    """Threads to use when none are asked for: the physical cores available to us."""
    cpu = cpu_description()
    return max(1, min(cpu["physical_cores"] or cpu["usable_cores"], cpu["usable_cores"]))


def versions(extra: Sequence[str] = ()) -> dict[str, str | None]:
    """Installed versions of the packages that decide the figures (None if absent).

    Args:
        extra: more distribution names to report, after the usual ones.
    """
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in (*_PACKAGES, *extra):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:  # the module that really runs: onnxruntime-gpu installs over the CPU build's name
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return out


def nvidia_smi(*query: str) -> list[str] | None:
    """Non-empty output lines of `nvidia-smi QUERY...`; None where it is missing or fails."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, *query], capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def gpu_names() -> list[str]:
    """Names of the NVIDIA GPUs nvidia-smi sees; [] when there is none."""
    return nvidia_smi("--query-gpu=name,memory.total,driver_version", "--format=csv,noheader") or []


def ort_providers() -> list[str]:
    """onnxruntime's available execution providers."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def environment(*, threads: int, wait_policy: str = "default") -> Environment:
    """The header of a benchmark run.

    Args:
        threads: the intra-op thread count given to both onnxruntime and torch.
        wait_policy: how idle worker threads wait on both sides (see config.WAIT_POLICIES).
    """
    return {
        "load_average_start": load_average(),
        "wait_policy": wait_policy,
        "omp_wait_policy_env": os.environ.get("OMP_WAIT_POLICY"),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "os": platform.platform(),
        "python_executable": sys.executable,
        "cpu": cpu_description(),
        "threads": threads,
        "gpus": gpu_names(),
        "ort_providers": ort_providers(),
        "versions": versions(),
    }


def header_lines(env: Environment) -> list[str]:
    """The header as a few human-readable lines."""
    cpu = env["cpu"]
    v = env["versions"]
    ort_v = v.get("onnxruntime") or v.get("onnxruntime-gpu")
    lines = [
        f"machine: {cpu['model']} ({cpu['arch']}), {cpu['physical_cores']} physical / "
        f"{cpu['logical_cores']} logical cores, {cpu['usable_cores']} usable",
        f"ISA: {' '.join(cpu['isa']) or 'n/a'}",
        f"GPU: {'; '.join(env['gpus']) or 'none'}; onnxruntime providers: "
        f"{', '.join(env['ort_providers'])}",
        f"threads: {env['threads']} (onnxruntime intra_op = torch.set_num_threads); idle "
        f"threads: {env.get('wait_policy')} (OMP_WAIT_POLICY={env.get('omp_wait_policy_env')}); "
        f"load average at start {env.get('load_average_start')}, at end "
        f"{env.get('load_average_end', 'n/a')}",
        f"versions: cliprt {v.get('cliprt')}, onnxruntime {ort_v}, torch {v.get('torch')}, "
        f"transformers {v.get('transformers')}, numpy {v.get('numpy')}, pillow {v.get('pillow')}, "
        f"python {v.get('python')}",
        f"date: {env['date_utc']}",
    ]
    return lines
