"""Helpers shared by the wrapper modules: image arguments and JSON results."""

from __future__ import annotations

import os
import re
from typing import Any

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    """Return the snake_case form of a camelCase JSON key."""
    return _CAMEL.sub("_", name).lower()


def snake_keys(data: dict[str, Any]) -> dict[str, Any]:
    """Return `data` with its top-level keys in snake_case."""
    return {snake(key): value for key, value in data.items()}


def image_arg(image: Any) -> Any:
    """Return an image in a form the native module reads.

    Paths (``str`` or ``os.PathLike``) and ``bytes`` pass through as path strings and
    encoded bytes. PIL images become uint8 numpy arrays (RGB, or RGBA when they have
    transparency). numpy arrays pass through unchanged.
    """
    if isinstance(image, (str, bytes)):
        return image
    if isinstance(image, os.PathLike):
        return os.fspath(image)
    if hasattr(image, "mode") and hasattr(image, "convert"):
        import numpy as np

        mode = "RGBA" if "A" in image.mode or "transparency" in getattr(image, "info", {}) else "RGB"
        return np.asarray(image.convert(mode))
    return image


def images_arg(images: Any) -> Any:
    """Return one image or a list of images in the native module's forms."""
    if isinstance(images, (list, tuple)):
        return [image_arg(image) for image in images]
    return image_arg(images)


def plain(value: Any) -> Any:
    """Return numpy scalars (``np.float32(1.5)``, ``np.int64(3)``) as Python numbers.

    Other values pass through, so the JSON encoder and the native module see the types
    they accept.
    """
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()
    return value


def check_progress(progress: Any) -> None:
    """Raise :class:`TypeError` unless ``progress`` is ``None`` or callable."""
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable or None, got {type(progress).__name__}")
