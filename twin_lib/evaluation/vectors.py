"""Cosine helpers shared by the style and grounding measures."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Embedder = Callable[[Sequence[str]], np.ndarray]
"""Texts -> one row vector each (the feature embedding model in the platform)."""


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1; an all-zero row (an empty text) stays zero."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix, dtype=float), where=norms > 0)


def profile(matrix: np.ndarray) -> np.ndarray:
    """The unit-length mean direction of unit rows: what a set of texts has in common."""
    return unit_rows(unit_rows(matrix).mean(axis=0, keepdims=True))[0]
