"""cliprt.shipped finds the checkpoints kept in the source tree (not in the wheel)
from a clone, and says what to do where an install has none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cliprt.errors import ModelFolderError
from cliprt.shipped import (
    SOURCE_TREE_CHECKPOINTS,
    find_checkpoint,
    require_checkpoint,
    shipped_folder,
)

REPO = Path(__file__).resolve().parents[2]


def test_the_shapes_checkpoint_is_in_the_source_tree_not_the_package() -> None:
    assert shipped_folder("shapes-checkpoint") is None
    folder = find_checkpoint("shapes-checkpoint")
    assert folder is not None
    assert folder.resolve() == (REPO / SOURCE_TREE_CHECKPOINTS["shapes-checkpoint"]).resolve()
    assert json.loads((folder / "config.json").read_text())["model_type"] == "clip"


def test_the_checkpoint_shares_one_copy_of_the_model_folder_files() -> None:
    checkpoint = find_checkpoint("shapes-checkpoint")
    model = shipped_folder("shapes")
    assert checkpoint is not None and model is not None
    for name in ("tokenizer.json", "preprocessor_config.json"):
        assert (checkpoint / name).read_bytes() == (model / name).read_bytes(), name


def test_unknown_names_say_which_are_known() -> None:
    assert find_checkpoint("no-such-checkpoint") is None
    with pytest.raises(
        ModelFolderError, match=r"no checkpoint named 'x' \(known: shapes-checkpoint\)"
    ):
        require_checkpoint("x")
