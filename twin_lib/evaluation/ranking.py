"""hit@k and MRR of ranked results against the items known to be relevant."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from twin_lib.evaluation.results import RetrievalFigures


def reciprocal_rank(ranking: Sequence[str], relevant: Collection[str]) -> float:
    """1 / rank of the first relevant item; 0 when none was returned."""
    return next((1.0 / rank for rank, item in enumerate(ranking, 1) if item in relevant), 0.0)


def ranking_figures(
    rankings: Sequence[Sequence[str]], relevant: Sequence[Collection[str]], k: int
) -> RetrievalFigures:
    """Mean hit@1, hit@k and reciprocal rank over the questions (rankings cut at ``k``)."""
    if len(rankings) != len(relevant):
        raise ValueError(f"{len(rankings)} rankings for {len(relevant)} sets of relevant items")
    if not rankings:
        raise ValueError(
            "no question with a known source chunk to score retrieval on: the instruction "
            "snapshot holds no examples; rebuild it"
        )
    pairs = zip(rankings, relevant, strict=True)
    ranks = [reciprocal_rank(ranking[:k], wanted) for ranking, wanted in pairs]
    count = len(ranks)
    return RetrievalFigures(
        questions=count,
        k=k,
        hit_at_1=sum(rank == 1.0 for rank in ranks) / count,
        hit_at_k=sum(rank > 0 for rank in ranks) / count,
        mrr=sum(ranks) / count,
    )
