"""One article published in several places is one document that remembers every place.

Writers cross-post: the same essay on their blog and on Medium, a newsletter and its web
archive. Trained on twice, it would weigh double; retrieved twice, it would crowd out
other context. Two documents are one article when their text is the same (ignoring case
and whitespace) or when one's ``<link rel="canonical">`` names the other's address on
another site (the mark syndication platforms put on imported posts, whose text often gains
a footer); a canonical address that is not itself crawled joins nothing, so a site that
names one address canonical for every page does not fold its pages together. The original
(the page the others name canonical) is kept, else the first found in the order the
sources were given; the other URLs go into its ``syndicated_at`` metadata, one per line.
Repository files are never merged: a file's identity is its path, and small files repeat
across repositories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from twin_lib.domain import Category, RawDocument
from twin_lib.hashing import sha256_text

SYNDICATED_AT = "syndicated_at"
CANONICAL_URL = "canonical_url"


@dataclass
class _Article:
    kept: RawDocument
    urls: list[str] = field(default_factory=list)

    def add(self, document: RawDocument) -> None:
        """Fold in a copy; the original, named canonical by the kept one, replaces it."""
        if document.source_url == self.kept.source_url:
            return
        if self.kept.metadata.get(CANONICAL_URL) == document.source_url:
            self.kept, document = document, self.kept
        if document.source_url not in self.urls:
            self.urls.append(document.source_url)

    def document(self) -> RawDocument:
        metadata = {k: v for k, v in self.kept.metadata.items() if k != SYNDICATED_AT}
        copies = [url for url in self.urls if url != self.kept.source_url]
        if copies:
            metadata[SYNDICATED_AT] = "\n".join(copies)
        if metadata == self.kept.metadata:
            return self.kept
        return self.kept.model_copy(update={"metadata": metadata})


def _keys(document: RawDocument, crawled: set[str]) -> list[str]:
    text = sha256_text(" ".join(document.text.casefold().split()))
    canonical = document.metadata.get(CANONICAL_URL)
    original = canonical if canonical in crawled else document.source_url
    return [f"text:{text}", f"url:{original}", f"url:{document.source_url}"]


def merge_syndicated(documents: Sequence[RawDocument]) -> list[RawDocument]:
    """The documents with copies folded into one document per article (see module doc).

    ``syndicated_at`` is worked out again on every crawl, so a copy that disappeared from
    its site disappears from the list too.
    """
    order: list[RawDocument | _Article] = []
    by_key: dict[str, _Article] = {}
    crawled = {document.source_url for document in documents}
    for document in documents:
        if document.category is Category.REPOSITORY:
            order.append(document)
            continue
        keys = _keys(document, crawled)
        article = next((by_key[key] for key in keys if key in by_key), None)
        if article is None:
            article = _Article(document)
            order.append(article)
        else:
            article.add(document)
        for key in keys:
            by_key.setdefault(key, article)
    return [item.document() if isinstance(item, _Article) else item for item in order]
