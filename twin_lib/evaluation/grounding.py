"""Grounding: the share of an answer's sentences that a retrieved passage supports.

The rule: an answer is split into sentences (at ., ! or ? followed by space, and at line
breaks); fragments of fewer than ``MIN_WORDS`` words make no claim and are skipped. A
sentence is supported when, for at least one passage retrieved for its question,

- the cosine of the two sentence embeddings is at least ``cosine`` (it says the same thing), or
- at least ``overlap`` of the sentence's distinct words appear in the passage (it copies it).

The rate is supported sentences / sentences over all answers, so a long answer weighs more
than a short one; an answer without sentences (empty) counts in the refusal figures instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from twin_lib.evaluation.results import Grounding
from twin_lib.evaluation.vectors import Embedder, unit_rows

MIN_WORDS = 3
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\w+")


def sentences(text: str) -> list[str]:
    parts = (part.strip() for part in _SENTENCE_END.split(text))
    return [part for part in parts if len(_WORD.findall(part)) >= MIN_WORDS]


def words(text: str) -> set[str]:
    return {word.lower() for word in _WORD.findall(text)}


def word_overlap(sentence: str, passage: str) -> float:
    """Share of the sentence's distinct words that the passage contains."""
    mine = words(sentence)
    return len(mine & words(passage)) / len(mine) if mine else 0.0


def grounding(
    answers: Sequence[tuple[str, Sequence[str]]],
    *,
    embed: Embedder,
    cosine: float,
    overlap: float,
) -> Grounding:
    """``answers`` are (answer text, the passages retrieved for its question)."""
    claims = [(sentence, passages) for text, passages in answers for sentence in sentences(text)]
    answered = sum(bool(sentences(text)) for text, _ in answers)
    if not claims:
        return Grounding(answers=0, sentences=0, supported=0, rate=None)
    passages = sorted({p for _, found in claims for p in found})
    index = {passage: row for row, passage in enumerate(passages)}
    sentence_rows = unit_rows(np.asarray(embed([s for s, _ in claims]), dtype=float))
    passage_rows = unit_rows(np.asarray(embed(passages), dtype=float)) if passages else None
    supported = 0
    for row, (sentence, found) in enumerate(claims):
        if not found or passage_rows is None:
            continue
        close = passage_rows[[index[p] for p in found]] @ sentence_rows[row]
        copied = max(word_overlap(sentence, p) for p in found)
        supported += bool(close.max() >= cosine or copied >= overlap)
    return Grounding(
        answers=answered, sentences=len(claims), supported=supported, rate=supported / len(claims)
    )
