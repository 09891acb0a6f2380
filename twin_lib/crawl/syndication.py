"""One article published in several places is one document that remembers every place.

Writers cross-post: the same essay on their blog and on Medium, a newsletter and its web
archive. Trained on twice, it would weigh double; retrieved twice, it would crowd out
other context. Documents whose text is the same (ignoring case and
whitespace) are merged into the first one found, in the order the sources were given; the
other URLs are kept in its ``syndicated_at`` metadata, one per line. Repository files are
never merged: a file's identity is its path, and small files repeat across repositories.
"""

from __future__ import annotations

from collections.abc import Sequence

from twin_lib.domain import Category, RawDocument
from twin_lib.hashing import sha256_text

SYNDICATED_AT = "syndicated_at"


def _text_key(document: RawDocument) -> str:
    return sha256_text(" ".join(document.text.casefold().split()))


def merge_syndicated(documents: Sequence[RawDocument]) -> list[RawDocument]:
    """The documents with copies folded into the first copy (see the module's docstring).

    ``syndicated_at`` is worked out again on every crawl, so a copy that disappeared from
    its site disappears from the list too.
    """
    kept: dict[str, RawDocument] = {}
    copies: dict[str, list[str]] = {}
    order: list[RawDocument | str] = []
    for document in documents:
        if document.category is Category.REPOSITORY:
            order.append(document)
            continue
        key = _text_key(document)
        first = kept.get(key)
        if first is None:
            kept[key] = document
            copies[key] = []
            order.append(key)
        elif document.source_url != first.source_url:
            copies[key].append(document.source_url)
    return [
        item if isinstance(item, RawDocument) else _with_copies(kept[item], copies[item])
        for item in order
    ]


def _with_copies(document: RawDocument, urls: list[str]) -> RawDocument:
    metadata = {k: v for k, v in document.metadata.items() if k != SYNDICATED_AT}
    if urls:
        metadata[SYNDICATED_AT] = "\n".join(dict.fromkeys(urls))
    if metadata == document.metadata:
        return document
    return document.model_copy(update={"metadata": metadata})
