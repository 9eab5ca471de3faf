"""Compatibility module for platform scripts that import ``NeuralOCROrchestrator``.

kai has no text recognition (OCR) engine yet, so :meth:`NeuralOCROrchestrator.available_engines`
returns an empty list and scripts that check it before running OCR skip that step.
"""

from __future__ import annotations

__all__ = ["NeuralOCROrchestrator"]


class NeuralOCROrchestrator:
    """Lists the OCR engines kai provides: none so far."""

    def available_engines(self) -> list[str]:
        """Return the names of the OCR engines that can run; empty, as kai has none yet."""
        return []
