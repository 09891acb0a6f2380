"""How much a faster encoder changes what search finds: nearest-neighbour recall@k.

A cheaper encoder is acceptable when, for every text of a corpus, the k texts nearest to it
are (almost) the same as with the reference encoder; the vectors themselves may move.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _neighbours(vectors: np.ndarray, k: int) -> np.ndarray:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)  # a text is not its own neighbour
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def neighbour_recall(
    reference: Sequence[Sequence[float]], candidate: Sequence[Sequence[float]], k: int = 10
) -> float:
    """The mean share of each text's k reference neighbours the candidate also ranks top-k."""
    ref, cand = np.asarray(reference, np.float32), np.asarray(candidate, np.float32)
    if ref.shape != cand.shape or len(ref) <= k:
        raise ValueError(
            f"recall@{k} needs two equally shaped sets of more than {k} vectors; "
            f"got {ref.shape} and {cand.shape}"
        )
    expected, found = _neighbours(ref, k), _neighbours(cand, k)
    shared = [len(set(a) & set(b)) for a, b in zip(expected.tolist(), found.tolist(), strict=True)]
    return float(np.mean(shared)) / k
