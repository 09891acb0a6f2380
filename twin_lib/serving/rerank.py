"""From hybrid-search candidates to the few passages placed in the prompt.

Hybrid search fuses BM25 and vector ranks into a relative score that says little across
questions; the rerankers here score each candidate against the question itself:

- ``embedding``: exact cosine between the question's vector and the chunk's stored vector
  (the index search is approximate and its fused score is rank-based);
- ``cross-encoder``: a sentence-transformers ``CrossEncoder`` reading question and passage
  together (more accurate, one forward pass per candidate);
- ``none``: keep the fused hybrid score.

Then duplicates go (a text reposted elsewhere has the same content hash; two chunks of one
document that say nearly the same thing waste the prompt), and the selection keeps the best
``top_k`` above ``min_score`` within ``max_context_chars``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from twin_lib.serving.contracts import RetrievedChunk
from twin_lib.settings import RetrievalSettings

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

NEAR_DUPLICATE_COSINE = 0.97
"""Two chunks of one document this close in embedding space say the same thing."""


class Candidate(BaseModel):
    """A hybrid-search hit: the chunk (scored by fusion so far) and its stored vector."""

    chunk: RetrievedChunk
    vector: list[float]


class Reranker(Protocol):
    name: str

    def scores(
        self, question: str, query_vector: Sequence[float], candidates: Sequence[Candidate]
    ) -> list[float]: ...


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Exact cosine similarity; 0 for a zero vector."""
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return dot / norms if norms else 0.0


class EmbeddingReranker:
    name = "embedding"

    def scores(
        self, question: str, query_vector: Sequence[float], candidates: Sequence[Candidate]
    ) -> list[float]:
        return [cosine(query_vector, c.vector) for c in candidates]


class FusionScores:
    """No reranking: the hybrid search's own fused score."""

    name = "none"

    def scores(
        self, question: str, query_vector: Sequence[float], candidates: Sequence[Candidate]
    ) -> list[float]:
        return [c.chunk.score for c in candidates]


class CrossEncoderReranker:
    name = "cross-encoder"

    def __init__(self, model: CrossEncoder) -> None:
        self.model = model

    def scores(
        self, question: str, query_vector: Sequence[float], candidates: Sequence[Candidate]
    ) -> list[float]:
        if not candidates:
            return []
        pairs = [(question, c.chunk.content) for c in candidates]
        return [float(s) for s in self.model.predict(pairs, show_progress_bar=False)]


def load_cross_encoder(path: str | None, device: str) -> CrossEncoder:
    """The configured model, loaded from disk or a reachable hub; refused clearly otherwise."""
    if not path:
        raise ValueError(
            "retrieval.reranker is cross-encoder but no model is configured: set "
            "TWIN_SERVING__RETRIEVAL__CROSS_ENCODER_MODEL to a CrossEncoder directory or id, "
            "or choose TWIN_SERVING__RETRIEVAL__RERANKER=embedding"
        )
    from sentence_transformers import CrossEncoder

    try:
        return CrossEncoder(path, device=device)
    except OSError as error:
        raise ValueError(
            f"cross-encoder model {path!r} could not be loaded ({error}); give a local "
            "directory holding a sentence-transformers CrossEncoder (no model hub is needed "
            "then) in TWIN_SERVING__RETRIEVAL__CROSS_ENCODER_MODEL, or choose "
            "TWIN_SERVING__RETRIEVAL__RERANKER=embedding"
        ) from error


def make_reranker(retrieval: RetrievalSettings, device: str = "cpu") -> Reranker:
    if retrieval.reranker == "cross-encoder":
        return CrossEncoderReranker(load_cross_encoder(retrieval.cross_encoder_model, device))
    if retrieval.reranker == "none":
        return FusionScores()
    return EmbeddingReranker()


def rank(candidates: Sequence[Candidate], scores: Sequence[float]) -> list[Candidate]:
    """Candidates carrying their new score, best first (ties keep the search order)."""
    rescored = [
        c.model_copy(update={"chunk": c.chunk.model_copy(update={"score": float(s)})})
        for c, s in zip(candidates, scores, strict=True)
    ]
    return sorted(rescored, key=lambda c: -c.chunk.score)


def _duplicates(kept: Candidate, other: Candidate, near: float) -> bool:
    if kept.chunk.chunk_id == other.chunk.chunk_id:
        return True
    if kept.chunk.content_hash == other.chunk.content_hash:
        return True
    return (
        kept.chunk.document_id == other.chunk.document_id
        and cosine(kept.vector, other.vector) >= near
    )


def deduplicate(
    ranked: Sequence[Candidate], near: float = NEAR_DUPLICATE_COSINE
) -> list[Candidate]:
    """The best-ranked of each group of duplicates, in rank order."""
    kept: list[Candidate] = []
    for candidate in ranked:
        if not any(_duplicates(k, candidate, near) for k in kept):
            kept.append(candidate)
    return kept


def select(ranked: Sequence[Candidate], retrieval: RetrievalSettings) -> list[RetrievedChunk]:
    """At most ``top_k`` chunks scoring at least ``min_score``, in rank order, whose text
    fits in ``max_context_chars`` together; the first chunk that does not fit ends the list
    (a lower-ranked short chunk is not preferred over a better long one). A best chunk
    longer than the whole budget is cut to it, so a question with a match never gets none.
    """
    chosen: list[RetrievedChunk] = []
    used = 0
    for candidate in ranked:
        chunk = candidate.chunk
        if len(chosen) == retrieval.top_k:
            break
        if retrieval.min_score is not None and chunk.score < retrieval.min_score:
            break
        if used + len(chunk.content) > retrieval.max_context_chars:
            if not chosen:
                chosen.append(chunk.model_copy(update={"content": _cut(chunk.content, retrieval)}))
            break
        chosen.append(chunk)
        used += len(chunk.content)
    return chosen


def _cut(text: str, retrieval: RetrievalSettings) -> str:
    """``text`` cut to the budget at the last space before it (or hard, without one)."""
    head = text[: retrieval.max_context_chars]
    space = head.rfind(" ")
    return head[:space] if space > 0 else head
