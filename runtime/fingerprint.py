"""Which model made a set of embeddings: the fingerprint that shards and index files carry.

Embeddings of two different models live in unrelated spaces: searching an index built
with one model by queries of another returns confident garbage. Every bulk output
(Parquet shards, the .npy sidecar, index files) records the fingerprint of the model that
made it, and search compares it with the querying model's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from cliprt.errors import InputError, ModelMismatchError
from cliprt.manifest import MANIFEST_NAME, sha256_file

__all__ = ["ModelFingerprint", "check_same_model", "fingerprint_of"]


@dataclass(frozen=True)
class ModelFingerprint:
    """The identity of the model (and precision) that made some embeddings.

    Attributes:
        manifest_sha256: hex sha256 of the model folder's manifest.json (which itself
            pins every tower file by sha256).
        precision: the vision tower variant used: "fp32", "fp16" or "int8".
        embed_dim: the embedding width D.
        model: a human-readable name of the model (its folder's name); informative only.
    """

    manifest_sha256: str
    precision: str
    embed_dim: int
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def to_json(self) -> str:
        """Compact JSON, the form stored in Parquet metadata and index files."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "fingerprint") -> ModelFingerprint:
        """Reads a dict written by :meth:`to_dict` (unknown keys are ignored).

        Raises:
            InputError: a missing or mistyped field.
        """
        try:
            fp = cls(
                manifest_sha256=str(data["manifest_sha256"]),
                precision=str(data["precision"]),
                embed_dim=int(data["embed_dim"]),
                model=str(data.get("model", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"{where}: not a cliprt model fingerprint ({type(exc).__name__}: {exc}); "
                "rewrite it with this cliprt"
            ) from exc
        return fp

    def describe(self) -> str:
        """One line for messages: name, precision, dim and a short sha."""
        name = f"{self.model} " if self.model else ""
        return (
            f"{name}(manifest {self.manifest_sha256[:12]}, {self.precision}, dim {self.embed_dim})"
        )


def fingerprint_of(model: Any) -> ModelFingerprint:
    """The fingerprint of a loaded :class:`~cliprt.runtime.model.ClipModel`."""
    return ModelFingerprint(
        manifest_sha256=sha256_file(model.folder / MANIFEST_NAME),
        precision=model.precision,
        embed_dim=int(model.embed_dim),
        model=model.folder.name,
    )


def check_same_model(
    stored: ModelFingerprint | None,
    current: ModelFingerprint,
    *,
    what: str,
    allow_mismatch: bool = False,
) -> None:
    """Refuses to mix embeddings of two models.

    Another precision of the same model (same manifest) is accepted: its embeddings live
    in the same space, within the variant's recorded parity.

    Args:
        stored: the fingerprint recorded with the embeddings (None: not recorded, e.g.
            an index written before fingerprints existed; nothing to check).
        current: the fingerprint of the model about to be used with them.
        what: names the embeddings in the message (e.g. "index images.cix").
        allow_mismatch: skip the check (the caller knows the two models agree).

    Raises:
        ModelMismatchError: different manifests or embedding widths.
    """
    if stored is None or allow_mismatch:
        return
    if stored.manifest_sha256 != current.manifest_sha256 or stored.embed_dim != current.embed_dim:
        raise ModelMismatchError(
            f"{what} was built with model {stored.describe()} but the model in use is "
            f"{current.describe()}: their embeddings are not comparable. Use the model that "
            "built it, rebuild it with this one, or override with --allow-model-mismatch "
            "(allow_model_mismatch=True) if you know they agree"
        )
