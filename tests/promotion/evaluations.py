"""Crafted evaluations: the real ``EvaluationResult`` stored where the evaluation step stores
it (``evaluation.json`` beside the version, its summary on the version), with figures chosen
by the test instead of measured, so each test knows the right decision."""

from __future__ import annotations

from twin_lib.evaluation.results import (
    AnswerStats,
    EvaluationResult,
    Grounding,
    ModelFigures,
    Perplexity,
    RetrievalFigures,
    Sample,
    StyleCalibration,
    StylePosition,
    StyleScore,
)
from twin_lib.registry.models import ModelVersion
from twin_lib.registry.store import ModelRegistry, split_s3_uri
from twin_lib.serving.contracts import Source


def figures(
    label: str, perplexity: float, position: float | None, refusal_rate: float
) -> ModelFigures:
    score = StyleScore(tfidf=0.5, embedding=0.5)
    return ModelFigures(
        label=label,
        weights=f"/models/{label}",
        perplexity=Perplexity(texts=4, tokens=400, mean_nll=1.0, perplexity=perplexity),
        style=score,
        style_position=StylePosition(tfidf=position, embedding=position),
        grounding=Grounding(answers=4, sentences=8, supported=6, rate=0.75),
        answers=AnswerStats(
            answers=4,
            words_mean=30,
            words_p50=30,
            words_p95=40,
            tokens_mean=40,
            tokens_p50=40,
            tokens_p95=50,
            empty=0,
            refusals=round(refusal_rate * 4),
            refusal_rate=refusal_rate,
        ),
    )


def crafted_evaluation(
    model: ModelVersion,
    *,
    perplexity: tuple[float, float] = (10.0, 12.0),
    style: tuple[float | None, float | None] = (0.6, 0.2),
    hit_at_k: float = 0.8,
    refusal_rate: tuple[float, float] = (0.0, 0.0),
    samples: int = 3,
) -> EvaluationResult:
    """(candidate, base) pairs as given; everything else plausible and fixed."""
    return EvaluationResult(
        model=model.name,
        version=model.version,
        base_model=model.base_model,
        author="Jane Author",
        collection="TwinChunk",
        questions=4,
        candidate=figures(model.version, perplexity[0], style[0], refusal_rate[0]),
        base=figures("base", perplexity[1], style[1], refusal_rate[1]),
        calibration=StyleCalibration(
            ceiling=StyleScore(tfidf=0.9, embedding=0.9),
            floor=StyleScore(tfidf=0.1, embedding=0.1),
            floor_source="other_author",
            profile_texts=4,
            ceiling_texts=8,
            floor_texts=8,
        ),
        retrieval=RetrievalFigures(questions=10, k=4, hit_at_1=0.5, hit_at_k=hit_at_k, mrr=0.6),
        samples=[
            Sample(
                question=f"What is point {i}?",
                reference=f"The author's point {i}.",
                sources=[
                    Source(chunk_id=f"c{i}", url=f"http://127.0.0.1/{i}", title="t", score=0.9)
                ],
                base_answer=f"base answer {i}",
                twin_answer=f"twin answer {i}",
            )
            for i in range(samples)
        ],
    )


def store_evaluation(registry: ModelRegistry, result: EvaluationResult) -> None:
    """Where and how the evaluation step leaves it (without the HTML report)."""
    json_uri = f"{registry.version_uri(result.model, result.version)}evaluation.json"
    result = result.model_copy(update={"json_uri": json_uri})
    registry.store.put_json(*split_s3_uri(json_uri), result.model_dump(mode="json"))
    registry.record_evaluation(result.model, result.version, result.summary())
