"""Material intelligence for building and interior materials.

kai embeds texts and images, checks photo quality, keeps a searchable material catalog,
recognizes materials in photos, keeps a versioned registry of analysis parameters and
reconstructs cameras and 3D points from photos (:mod:`kai.recon`).
The heavy work runs in Rust (kai-core) with the GIL released; vectors come back as
float32 numpy arrays and other results as dataclasses. Errors are subclasses of
:class:`kai.KaiError`.
"""

from kai import catalog as _catalog
from kai import images as _images
from kai import models as _models
from kai import recon
from kai import registry as _registry
from kai._kai import TextEmbedder, __version__
from kai.catalog import *  # noqa: F403
from kai.errors import (
    ConflictError,
    InvalidInputError,
    KaiError,
    ModelNotFoundError,
    NotFoundError,
    NotSupportedError,
    StorageError,
)
from kai.images import *  # noqa: F403
from kai.models import *  # noqa: F403
from kai.registry import *  # noqa: F403

__all__ = [
    "ConflictError",
    "InvalidInputError",
    "KaiError",
    "ModelNotFoundError",
    "NotFoundError",
    "NotSupportedError",
    "StorageError",
    "TextEmbedder",
    "__version__",
    "recon",
    *_images.__all__,
    *_catalog.__all__,
    *_registry.__all__,
    *_models.__all__,
]
