"""The one registry of what cliprt ships: the model folders inside the package
(models/NAME, loaded by name: `cliprt.load("shapes")`) and the HF checkpoints that the
repository keeps and the wheel does not ship (a manifest source "cliprt:NAME").

The `shapes` model's HF checkpoint (what the shipped ONNX folder models/shapes was
exported from) is of use only with torch: `cliprt demo`'s export step, the bench's
PyTorch reference (a manifest source "cliprt:shapes-checkpoint") and training/. So it
lives in the source tree, training/shapes-checkpoint, and a runtime install stays lean.
From a clone it is found either way pip installs it: an editable install runs from the
tree itself, a plain `pip install .` records the folder it came from (PEP 610
direct_url.json).
"""

from __future__ import annotations

import json
from importlib import metadata, resources
from pathlib import Path
from urllib.parse import unquote, urlparse

from cliprt.errors import ModelFolderError
from cliprt.manifest import MANIFEST_NAME

# A manifest source naming one of cliprt's own checkpoints: "cliprt:NAME".
SOURCE_SCHEME = "cliprt:"
# name (as in a manifest source "cliprt:NAME") -> folder in the source tree
SOURCE_TREE_CHECKPOINTS = {"shapes-checkpoint": "training/shapes-checkpoint"}


def shipped_folder(name: str) -> Path | None:
    """The folder models/`name` shipped inside the installed cliprt package (a model
    folder or a checkpoint), or None where the package has none of that name."""
    folder = resources.files("cliprt") / "models" / name
    return Path(str(folder)) if folder.is_dir() else None


def shipped_models() -> list[str]:
    """Names of the model folders shipped inside the cliprt package (e.g. "shapes")."""
    root = resources.files("cliprt") / "models"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / MANIFEST_NAME).is_file())


def source_trees() -> list[Path]:
    """Candidate cliprt source trees: the one this package runs from (an editable
    install), then the local folder pip installed it from."""
    trees = [Path(__file__).resolve().parents[2]]
    try:
        direct_url = metadata.distribution("cliprt").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        direct_url = None
    if direct_url:
        url = urlparse(json.loads(direct_url).get("url", ""))
        if url.scheme == "file":
            trees.append(Path(unquote(url.path)))
    return [t for t in trees if (t / "pyproject.toml").is_file()]


def find_checkpoint(name: str) -> Path | None:
    """The folder of the checkpoint `name` (e.g. "shapes-checkpoint"): a folder models/NAME
    shipped in the package, else the source tree's; None where neither exists."""
    shipped = shipped_folder(name)
    if shipped is not None:
        return shipped
    relative = SOURCE_TREE_CHECKPOINTS.get(name)
    if relative is None:
        return None
    for tree in source_trees():
        folder = tree / relative
        if (folder / "config.json").is_file():
            return folder
    return None


def require_checkpoint(name: str) -> Path:
    """find_checkpoint, or an error that says where the checkpoint is and what to do.

    Raises:
        ModelFolderError: this install has no such checkpoint.
    """
    folder = find_checkpoint(name)
    if folder is not None:
        return folder
    where = SOURCE_TREE_CHECKPOINTS.get(name)
    if where is None:
        known = ", ".join(sorted(SOURCE_TREE_CHECKPOINTS))
        raise ModelFolderError(f"no checkpoint named {name!r} (known: {known})")
    raise ModelFolderError(
        f"the {name} HF checkpoint is not in this cliprt install: the wheel ships only the "
        f"exported model folder, the checkpoint stays in cliprt's source tree ({where}); "
        'install from a clone (`pip install ".[export]"` in it) or pass a checkpoint folder'
    )
