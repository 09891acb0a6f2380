"""Train/test split by source document: no document has rows on both sides.

Rows of one document share phrasing, names and chunk overlaps; splitting rows would let the
test split measure memorisation. Documents are ordered by a seeded hash of their id and the
first ones go to test, so the split is deterministic for a seed and independent of row order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from twin_lib.domain.datasets import Split
from twin_lib.hashing import sha256_text


class _HasDocument(Protocol):
    @property
    def document_id(self) -> str: ...


Row = TypeVar("Row", bound=_HasDocument)


def held_out_count(documents: int, test_fraction: float) -> int:
    """At least one test document once there are two; never all of them."""
    if documents < 2:
        return 0
    wanted = math.ceil(documents * test_fraction) if test_fraction > 0 else 1
    return min(max(wanted, 1), documents - 1)


def assign_splits(
    document_ids: Iterable[str], *, test_fraction: float, seed: int
) -> dict[str, Split]:
    unique = sorted(set(document_ids))
    ranked = sorted(unique, key=lambda doc: (sha256_text(f"{seed}:{doc}"), doc))
    test = set(ranked[: held_out_count(len(unique), test_fraction)])
    return {doc: "test" if doc in test else "train" for doc in unique}


def split_rows(rows: Sequence[Row], assignment: dict[str, Split]) -> dict[Split, list[Row]]:
    """Rows grouped by their document's split, each keeping its order."""
    grouped: dict[Split, list[Row]] = {"train": [], "test": []}
    for row in rows:
        grouped[assignment[row.document_id]].append(row)
    return grouped
