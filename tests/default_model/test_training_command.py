"""training/README.md's command, with no options, trains the model that ships: every
default of train_shapes_clip equals the setting recorded by the shipped model's run
(training/shapes_figures.json, written from that run's train_figures.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_the_shipped_run() -> None:
    pytest.importorskip("torch", reason="training needs the export extra (torch)")
    from training.train_shapes_clip import build_parser

    shipped = json.loads((REPO / "training" / "shapes_figures.json").read_text())["training"]
    defaults = build_parser().parse_args([])
    assert {
        "seed": defaults.seed,
        "steps": defaults.steps,
        "batch_size": defaults.batch_size,
        "lr": defaults.lr,
        "unnamed_colour_fraction": defaults.unnamed_fraction,
        "torch_threads": defaults.threads,
    } == {
        "seed": shipped["seed"],
        "steps": shipped["steps"],
        "batch_size": shipped["batch_size"],
        "lr": shipped["lr"],
        "unnamed_colour_fraction": shipped["unnamed_colour_fraction"],
        "torch_threads": shipped["machine"]["torch_threads"],
    }


def test_readme_documents_the_default_command() -> None:
    readme = (REPO / "training" / "README.md").read_text()
    assert "python -m training.train_shapes_clip --out training/out/shapes-checkpoint\n" in readme
