"""Material intelligence: embeddings for building and interior materials.

The heavy work runs in Rust (kai-core) with the GIL released; results come back as numpy
arrays. Errors are subclasses of :class:`kai.KaiError`.
"""

from kai._kai import TextEmbedder, __version__
from kai.errors import (
    ConflictError,
    InvalidInputError,
    KaiError,
    ModelNotFoundError,
    NotFoundError,
    NotSupportedError,
    StorageError,
)

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
]
