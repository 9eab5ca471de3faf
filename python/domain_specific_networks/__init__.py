"""Compatibility module for platform scripts that import ``DomainSpecificNetworkManager``.

It maps to kai's domain-specific heads: small classifiers over the image embedding that
``kai heads train`` (or ``kai.Catalog.train_head``) trains and saves under
``<store>/heads/<domain>/``. The store is the default one: ``KAI_DATA_DIR``, else
``./kai-data``.
"""

from __future__ import annotations

import os
from pathlib import Path

import kai

__all__ = ["DomainSpecificNetworkManager"]


def _default_store() -> Path:
    return Path(os.environ.get("KAI_DATA_DIR") or "kai-data")


class DomainSpecificNetworkManager:
    """Lists the domain-specific heads trained in the default store."""

    def list_available_domains(self) -> list[str]:
        """Return the domains of the trained heads in the default store, sorted.

        A store without heads, or no store at all, gives an empty list; no store folder
        is created. Without a trained ``material-type`` head, recognition still names
        material types by the vote of the nearest catalog images. That vote is not a
        head, so it is not listed.
        """
        store = _default_store()
        if not (store / "heads").is_dir():
            return []
        return sorted(head.domain for head in kai.Catalog(store).heads())
