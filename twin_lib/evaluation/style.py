"""Authorship verification: how much generated text reads like the author.

Two independent measures, each the mean cosine of a text to the author's *profile*, the
mean direction of the author's text that the evaluated questions did not come from (the
training split's answers: many documents, so topics average out and style remains):
character n-gram TF-IDF, which tracks spelling, punctuation and function words, and
sentence embeddings, which track topic and phrasing. Raw cosines have no natural scale, so
each comes with a ceiling (the author's own held-out answers to the evaluated questions,
scored the same way: a twin that wrote exactly what the author wrote scores exactly there)
and a floor (another author's text, or the base model's answers), and a position
(score - floor) / (ceiling - floor) that is 0 at the floor and 1 at the ceiling. The TF-IDF
vocabulary and weights are fitted once on every text of the evaluation, so all scores share
one space.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from twin_lib.evaluation.results import (
    FloorSource,
    StyleCalibration,
    StylePosition,
    StyleScore,
)
from twin_lib.evaluation.vectors import Embedder, profile, unit_rows


def _profile_cosines(
    matrix: np.ndarray, profile_rows: int, groups: Mapping[str, slice]
) -> dict[str, float]:
    author = profile(matrix[:profile_rows])
    rows = unit_rows(matrix)
    return {name: float((rows[where] @ author).mean()) for name, where in groups.items()}


def style_scores(
    author_texts: Sequence[str],
    groups: Mapping[str, Sequence[str]],
    *,
    embed: Embedder,
    ngrams: tuple[int, int] = (2, 4),
) -> dict[str, StyleScore]:
    """The style score of each named group of texts against the profile of ``author_texts``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not author_texts:
        raise ValueError(
            "no text of the author to build a profile from: the dataset's training split is empty"
        )
    empty = [name for name, texts in groups.items() if not texts]
    if empty:
        raise ValueError(f"no texts to score for {', '.join(empty)}")
    texts = [*author_texts]
    spans: dict[str, slice] = {}
    for name, group in groups.items():
        spans[name] = slice(len(texts), len(texts) + len(group))
        texts.extend(group)
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=ngrams, sublinear_tf=True)
    tfidf = vectorizer.fit_transform(texts).toarray()
    embedded = np.asarray(embed(texts), dtype=float)
    embedded[[not text.strip() for text in texts]] = 0.0  # no text, no style (as in TF-IDF)
    by_tfidf = _profile_cosines(tfidf, len(author_texts), spans)
    by_embedding = _profile_cosines(embedded, len(author_texts), spans)
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


def calibrated_style(
    author_texts: Sequence[str],
    *,
    twin: Sequence[str],
    base: Sequence[str],
    author_answers: Sequence[str],
    other_authors: Sequence[str],
    embed: Embedder,
    ngrams: tuple[int, int] = (2, 4),
) -> tuple[StyleScore, StyleScore, StyleCalibration]:
    """Twin and base answers scored against the profile of ``author_texts``, with the
    author's own answers to the same questions as the ceiling and other authors' text as the
    floor; without another author the base model's answers are the floor (the base then sits
    at 0 by construction, and the twin's position says how much of the way to the author
    the fine-tuning went)."""
    groups = {"twin": twin, "base": base, "ceiling": author_answers}
    if other_authors:
        groups["floor"] = other_authors
    scores = style_scores(author_texts, groups, embed=embed, ngrams=ngrams)
    floor = "floor" if other_authors else "base"
    source: FloorSource = "other_author" if other_authors else "base_answers"
    calibration = StyleCalibration(
        ceiling=scores["ceiling"],
        floor=scores[floor],
        floor_source=source,
        profile_texts=len(author_texts),
        ceiling_texts=len(author_answers),
        floor_texts=len(groups[floor]),
    )
    return scores["twin"], scores["base"], calibration
