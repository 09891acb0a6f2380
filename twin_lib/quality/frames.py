"""The measurable columns the checks look at, computed from the domain records."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence

import pandas as pd

from twin_lib.domain import EmbeddedChunk, RawDocument
from twin_lib.domain.encoding import encoding_damage

ROW = "_row"


def printable_ratio(text: str) -> float:
    """Share of characters that are not control, unassigned or replacement characters.

    Mojibake from a wrong charset shows up as U+FFFD and C1 controls; binary shows as controls.
    """
    if not text:
        return 0.0
    bad = sum(
        1
        for ch in text
        if ch == "\ufffd" or (ch not in "\n\r\t" and unicodedata.category(ch) in ("Cc", "Cn", "Co"))
    )
    return 1 - bad / len(text)


def chars_per_token(text: str, tokens: int) -> float:
    """High when unknown tokens stand for long spans of text the model never sees."""
    return len(text) / tokens if tokens else float(len(text))


def letter_ratio(text: str) -> float:
    """Share of letters among non-space characters: low for dumps of numbers or symbols."""
    visible = [ch for ch in text if not ch.isspace()]
    if not visible:
        return 0.0
    return sum(ch.isalpha() for ch in visible) / len(visible)


def raw_documents_frame(documents: Sequence[RawDocument]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            ROW: range(len(documents)),
            "document_id": [d.document_id for d in documents],
            "author": [d.author.strip() for d in documents],
            "source_url": [d.source_url for d in documents],
            "category": [str(d.category) for d in documents],
            "content_hash": [d.content_hash for d in documents],
            "text_chars": [len(d.text.strip()) for d in documents],
            "printable_ratio": [printable_ratio(d.text) for d in documents],
            "letter_ratio": [letter_ratio(d.text) for d in documents],
            # a few mis-decoded characters barely move the printable ratio
            "encoding_damage": [encoding_damage(f"{d.title}\n{d.text}") for d in documents],
        }
    )


def chunks_frame(chunks: Sequence[EmbeddedChunk]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            ROW: range(len(chunks)),
            "chunk_id": [c.chunk_id for c in chunks],
            "document_id": [c.document_id for c in chunks],
            "text_chars": [len(c.text.strip()) for c in chunks],
            "token_count": [c.token_count for c in chunks],
            "chars_per_token": [chars_per_token(c.text, c.token_count) for c in chunks],
            "embedding_dim": [len(c.embedding) for c in chunks],
            "embedding_norm": [math.sqrt(sum(x * x for x in c.embedding)) for c in chunks],
        }
    )
