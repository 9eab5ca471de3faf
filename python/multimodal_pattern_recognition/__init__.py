"""Compatibility module for platform scripts that import ``MultiModalPatternRecognizer``.

It maps to :mod:`kai`: recognition runs through :meth:`kai.Catalog.recognize`, which
needs the default text model (:data:`kai.DEFAULT_TEXT_MODEL`) and the default image model
(:data:`kai.DEFAULT_IMAGE_MODEL`). Fetch them with ``python3 models/fetch.py`` or
:func:`kai.fetch_model`.
"""

from __future__ import annotations

import kai

__all__ = ["MultiModalPatternRecognizer"]


class MultiModalPatternRecognizer:
    """Reports whether kai can recognize materials on this machine."""

    def available(self) -> bool:
        """Return whether both default embedding models are fetched and verified.

        Each call checks the files' checksums again, so a model removed or damaged since
        the last call is reported.
        """
        required = {kai.DEFAULT_TEXT_MODEL, kai.DEFAULT_IMAGE_MODEL}
        ready = {model.name for model in kai.list_models() if model.state == "ready"}
        return required <= ready
