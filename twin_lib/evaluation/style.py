"""Authorship verification: how much generated text reads like the author's held-out text.

Two independent measures, each the mean cosine of a text to the author's *profile* (the mean
direction of the held-out reference texts): character n-gram TF-IDF, which tracks spelling,
punctuation and function words, and sentence embeddings, which track topic and phrasing.
Raw cosines have no natural scale, so each comes with a ceiling (the rest of the author's
own text scored the same way) and a floor (another author's text, or the base model's
answers), and a position (score - floor) / (ceiling - floor) that is 0 at the floor and 1
at the ceiling. The TF-IDF vocabulary and weights are fitted once on every text of the
evaluation, so all scores share one space.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from twin_lib.evaluation.results import StylePosition, StyleScore
from twin_lib.evaluation.vectors import Embedder, profile, unit_rows


def _profile_cosines(
    matrix: np.ndarray, reference_rows: int, groups: Mapping[str, slice]
) -> dict[str, float]:
    author = profile(matrix[:reference_rows])
    rows = unit_rows(matrix)
    return {name: float((rows[where] @ author).mean()) for name, where in groups.items()}


def style_scores(
    references: Sequence[str],
    groups: Mapping[str, Sequence[str]],
    *,
    embed: Embedder,
    ngrams: tuple[int, int] = (2, 4),
) -> dict[str, StyleScore]:
    """The style score of each named group of texts against the author's ``references``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not references:
        raise ValueError("no held-out text of the author to compare with: the test split is empty")
    empty = [name for name, texts in groups.items() if not texts]
    if empty:
        raise ValueError(f"no texts to score for {', '.join(empty)}")
    texts = [*references]
    spans: dict[str, slice] = {}
    for name, group in groups.items():
        spans[name] = slice(len(texts), len(texts) + len(group))
        texts.extend(group)
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=ngrams, sublinear_tf=True)
    tfidf = vectorizer.fit_transform(texts).toarray()
    embedded = np.asarray(embed(texts), dtype=float)
    by_tfidf = _profile_cosines(tfidf, len(references), spans)
    by_embedding = _profile_cosines(embedded, len(references), spans)
    return {name: StyleScore(tfidf=by_tfidf[name], embedding=by_embedding[name]) for name in groups}


def _position(score: float, ceiling: float, floor: float) -> float | None:
    span = ceiling - floor
    return (score - floor) / span if span > 1e-9 else None


def style_position(score: StyleScore, ceiling: StyleScore, floor: StyleScore) -> StylePosition:
    """Where a score lies between floor (0) and ceiling (1); not clipped: an answer may read
    more like the author than the author's other texts do, or less than the floor."""
    return StylePosition(
        tfidf=_position(score.tfidf, ceiling.tfidf, floor.tfidf),
        embedding=_position(score.embedding, ceiling.embedding, floor.embedding),
    )
