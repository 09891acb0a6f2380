"""The figures of one evaluation, its flat KFP metrics and the registry summary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from twin_lib.serving.contracts import Source


def utc_now() -> datetime:
    return datetime.now(UTC)


class Perplexity(BaseModel):
    """Token-weighted mean negative log-likelihood of held-out texts, and its exponential."""

    texts: int
    tokens: int
    mean_nll: float
    perplexity: float


class StyleScore(BaseModel):
    """Similarity to the author (mean cosine to the profile of the author's other texts)."""

    tfidf: float = Field(description="character n-gram TF-IDF cosine")
    embedding: float = Field(description="sentence-embedding cosine")


class StylePosition(BaseModel):
    """(score - floor) / (ceiling - floor): 0 at the floor, 1 at the ceiling; None when the
    ceiling does not lie above the floor (the calibration cannot tell them apart)."""

    tfidf: float | None
    embedding: float | None


FloorSource = Literal["other_author", "base_answers"]


class StyleCalibration(BaseModel):
    """What a score means: the author against themself, and text that is not theirs."""

    ceiling: StyleScore = Field(description="the author's own held-out answers")
    floor: StyleScore
    floor_source: FloorSource
    profile_texts: int = Field(description="texts of the author the profile is made of")
    ceiling_texts: int
    floor_texts: int


class Grounding(BaseModel):
    """Share of answer sentences that a retrieved passage supports."""

    answers: int = Field(description="answers with at least one sentence")
    sentences: int
    supported: int
    rate: float | None = Field(description="supported / sentences; None without sentences")


class AnswerStats(BaseModel):
    """Length and refusals of the generated answers."""

    answers: int
    words_mean: float
    words_p50: float
    words_p95: float
    tokens_mean: float
    tokens_p50: float
    tokens_p95: float
    empty: int
    refusals: int = Field(description="empty answers included")
    refusal_rate: float


class ModelFigures(BaseModel):
    """Everything measured of one model."""

    label: str
    weights: str
    perplexity: Perplexity
    style: StyleScore
    style_position: StylePosition
    grounding: Grounding
    answers: AnswerStats


class RetrievalFigures(BaseModel):
    """hit@k and MRR of the twin's retriever on questions whose source chunk is known."""

    questions: int
    k: int
    hit_at_1: float
    hit_at_k: float
    mrr: float


class Verdicts(BaseModel):
    """One criterion of the pairwise judge over every question, both orders asked."""

    twin: int = Field(description="the twin won in both orders")
    base: int = Field(description="the base won in both orders")
    ties: int = Field(description="a tie, or the two orders disagreed (position bias)")
    inconsistent: int = Field(description="of the ties: the two orders disagreed")
    invalid: int = Field(description="of the ties: a reply that held no verdict")
    twin_win_rate: float = Field(description="(twin + ties / 2) / questions")


class JudgeFigures(BaseModel):
    endpoint: str
    questions: int
    style: Verdicts
    accuracy: Verdicts


class Sample(BaseModel):
    """One question side by side."""

    question: str
    reference: str = Field(description="the author's own held-out answer")
    sources: list[Source]
    base_answer: str
    twin_answer: str


class EvaluationResult(BaseModel):
    """``evaluation.json`` beside the model version."""

    model: str
    version: str
    base_model: str
    author: str
    collection: str
    created: datetime = Field(default_factory=utc_now)
    questions: int
    candidate: ModelFigures
    base: ModelFigures
    calibration: StyleCalibration
    retrieval: RetrievalFigures
    judge: JudgeFigures | None = None
    samples: list[Sample]
    json_uri: str = ""
    report_uri: str = ""
    duration_s: float = 0.0
    inputs_digest: str = Field(
        default="",
        description="what the figures depend on (version, settings, the collection's chunks): "
        "an evaluation with the same digest is reused instead of run again",
    )

    @property
    def label(self) -> str:
        return f"{self.model}/{self.version}"

    def metrics(self) -> dict[str, float]:
        """Flat numbers for KFP ``Metrics`` (unset figures left out); the names stay the same
        whatever k is, so runs with different settings line up in the KFP UI."""
        values: dict[str, float | None] = {
            "questions": float(self.questions),
            "retrieval_hit_at_1": self.retrieval.hit_at_1,
            "retrieval_k": float(self.retrieval.k),
            "retrieval_hit_at_k": self.retrieval.hit_at_k,
            "retrieval_mrr": self.retrieval.mrr,
            "style_ceiling_tfidf": self.calibration.ceiling.tfidf,
            "style_ceiling_embedding": self.calibration.ceiling.embedding,
            "style_floor_tfidf": self.calibration.floor.tfidf,
            "style_floor_embedding": self.calibration.floor.embedding,
        }
        for side, figures in (("twin", self.candidate), ("base", self.base)):
            values |= {
                f"{side}_perplexity": figures.perplexity.perplexity,
                f"{side}_style_tfidf": figures.style.tfidf,
                f"{side}_style_embedding": figures.style.embedding,
                f"{side}_style_position_tfidf": figures.style_position.tfidf,
                f"{side}_style_position_embedding": figures.style_position.embedding,
                f"{side}_grounding": figures.grounding.rate,
                f"{side}_words_mean": figures.answers.words_mean,
                f"{side}_refusal_rate": figures.answers.refusal_rate,
            }
        if self.judge is not None:
            values["judge_style_twin_win_rate"] = self.judge.style.twin_win_rate
            values["judge_accuracy_twin_win_rate"] = self.judge.accuracy.twin_win_rate
        return {name: round(value, 6) for name, value in values.items() if value is not None}

    def summary(self) -> dict[str, object]:
        """What the registry keeps on the version: the figures a gate decides on, and where
        the whole evaluation is."""
        return {
            "created": self.created.isoformat(),
            "base_model": self.base_model,
            "json_uri": self.json_uri,
            "report_uri": self.report_uri,
            "metrics": self.metrics(),
        }
