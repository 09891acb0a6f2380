"""The gate's decision: approve, reject or wait, and the checks that decided it.

A pure function of the evidence. Automatic figures are judged against the candidate's own
base model measured in the same evaluation (perplexity not worse than the base's times
``1 + tolerance``, style position not below the base's, refusals not far above the base's)
or against absolute floors where the figure does not depend on the weights (retrieval's
hit@k). Review figures are judged only when the backend has human reviewers, and only once
enough responses are in.

- any check failed: **reject** (final: a rejected version is never deployed);
- else any check still waiting for evidence (no evaluation yet, too few reviews): **wait**,
  nothing is recorded and a later run decides again;
- else **approve**.

A figure that cannot mean anything (a style position whose calibration could not separate
ceiling from floor) is listed as skipped, with the reason, rather than decided on.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, computed_field

from twin_lib.promotion.reviews import ReviewEvidence, ReviewSummary
from twin_lib.registry.models import utc_now
from twin_lib.settings import GateSettings

PERPLEXITY = "perplexity"
STYLE_TFIDF = "style_position_tfidf"
STYLE_EMBEDDING = "style_position_embedding"
HIT_AT_K = "hit_at_k"
GROUNDING = "grounding"
REFUSAL_RATE = "refusal_rate"
JUDGE_STYLE = "judge_style_win_rate"
JUDGE_ACCURACY = "judge_accuracy_win_rate"

Comparison = Literal[">=", "<="]
NEGATION: dict[str, str] = {">=": "<", "<=": ">"}


class Outcome(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    WAIT = "wait"


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    WAITING = "waiting"
    SKIPPED = "skipped"


class MetricPair(BaseModel):
    """One figure of the candidate and of its base, measured the same way."""

    candidate: float | None = None
    base: float | None = None


Figures = dict[str, MetricPair]


class Check(BaseModel):
    """One rule applied to one number."""

    name: str
    source: Literal["evaluation", "review"]
    value: float | None
    threshold: float | None
    comparison: Comparison
    status: CheckStatus
    detail: str = Field(description="the numbers and the rule, as the registry records them")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passed(self) -> bool:
        return self.status == CheckStatus.PASSED


class Decision(BaseModel):
    """``decision.json`` beside the version: the outcome and all it was decided on."""

    model: str
    version: str
    outcome: Outcome
    reason: str
    checks: list[Check]
    review_backend: str
    human_review: bool
    notices: list[str] = Field(default_factory=list)
    figures: Figures | None = Field(description="None: the version had no evaluation")
    reviews: ReviewSummary
    thresholds: GateSettings
    decided_at: datetime = Field(default_factory=utc_now)
    by: str = ""
    recorded: bool = Field(default=False, description="written to the registry")

    def markdown(self) -> str:
        lines = [f"## {self.model} {self.version}: {self.outcome}", ""]
        lines += [f"> **{notice}**" for notice in self.notices]
        lines += [
            "",
            "| check | value | rule | status |",
            "| --- | --- | --- | --- |",
            *(
                f"| {c.name} | {_number(c.value)} | {c.comparison} {_number(c.threshold)} "
                f"| {c.status} |"
                for c in self.checks
            ),
            "",
            self.reason,
        ]
        return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _judged(
    name: str,
    source: Literal["evaluation", "review"],
    value: float,
    threshold: float,
    comparison: Comparison,
    basis: str,
) -> Check:
    passed = value >= threshold if comparison == ">=" else value <= threshold
    symbol = comparison if passed else NEGATION[comparison]
    return Check(
        name=name,
        source=source,
        value=value,
        threshold=threshold,
        comparison=comparison,
        status=CheckStatus.PASSED if passed else CheckStatus.FAILED,
        detail=f"{name} {_number(value)} {symbol} {_number(threshold)} ({basis})",
    )


def _pending(
    name: str,
    source: Literal["evaluation", "review"],
    comparison: Comparison,
    why: str,
    *,
    value: float | None = None,
    threshold: float | None = None,
    status: CheckStatus = CheckStatus.WAITING,
) -> Check:
    return Check(
        name=name,
        source=source,
        value=value,
        threshold=threshold,
        comparison=comparison,
        status=status,
        detail=f"{name}: {why}",
    )


def _relative(
    figures: Figures,
    name: str,
    comparison: Comparison,
    threshold_of: Callable[[float], float],
    basis_of: Callable[[float], str],
) -> Check:
    """A candidate figure against a threshold derived from the base's."""
    pair = figures.get(name)
    if pair is None:
        return _pending(name, "evaluation", comparison, "not in the evaluation: evaluate again")
    if pair.candidate is None or pair.base is None:
        return _pending(
            name,
            "evaluation",
            comparison,
            "no value for the candidate or the base (a style position has none when its "
            "calibration cannot tell the ceiling from the floor): not decided on",
            value=pair.candidate,
            status=CheckStatus.SKIPPED,
        )
    return _judged(
        name,
        "evaluation",
        pair.candidate,
        threshold_of(pair.base),
        comparison,
        basis_of(pair.base),
    )


def _floor(figures: Figures, name: str, floor: float, why_missing: str) -> Check:
    pair = figures.get(name)
    if pair is None or pair.candidate is None:
        return _pending(name, "evaluation", ">=", why_missing, threshold=floor)
    return _judged(name, "evaluation", pair.candidate, floor, ">=", "floor")


def automatic_checks(figures: Figures | None, gate: GateSettings) -> list[Check]:
    if figures is None:
        return [
            _pending(
                "evaluation",
                "evaluation",
                ">=",
                "this version has no evaluation yet: run `twin evaluate VERSION`",
            )
        ]
    tolerance = gate.perplexity_tolerance
    checks = [
        _relative(
            figures,
            PERPLEXITY,
            "<=",
            lambda base: base * (1 + tolerance),
            lambda base: f"base {_number(base)} x {1 + tolerance:g}",
        ),
        *(
            _relative(
                figures,
                name,
                ">=",
                lambda base: base + gate.min_style_gain,
                lambda base: f"base {_number(base)} + {gate.min_style_gain:g}",
            )
            for name in (STYLE_TFIDF, STYLE_EMBEDDING)
        ),
        _floor(figures, HIT_AT_K, gate.min_hit_at_k, "retrieval was not measured"),
    ]
    if gate.min_grounding is not None:
        checks.append(_floor(figures, GROUNDING, gate.min_grounding, "grounding was not measured"))
    if gate.max_refusal_increase is not None:
        increase = gate.max_refusal_increase
        checks.append(
            _relative(
                figures,
                REFUSAL_RATE,
                "<=",
                lambda base: base + increase,
                lambda base: f"base {_number(base)} + {increase:g}",
            )
        )
    if gate.min_judge_win_rate is not None:
        checks += [
            _floor(
                figures,
                name,
                gate.min_judge_win_rate,
                "the pairwise judge did not run: enable evaluation.judge and evaluate again",
            )
            for name in (JUDGE_STYLE, JUDGE_ACCURACY)
        ]
    return checks


def review_checks(reviews: ReviewEvidence, gate: GateSettings) -> list[Check]:
    """Nothing for a backend without reviewers; with too few responses every review figure
    waits (shown with its value so far) instead of being judged on a handful."""
    if not reviews.human:
        return []
    summary = reviews.summary
    enough = summary.responses >= gate.min_responses
    responses = Check(
        name="review_responses",
        source="review",
        value=summary.responses,
        threshold=gate.min_responses,
        comparison=">=",
        status=CheckStatus.PASSED if enough else CheckStatus.WAITING,
        detail=f"review_responses {summary.responses} of {gate.min_responses} needed",
    )
    rules: list[tuple[str, float | None, float]] = [
        ("review_mean_rating", summary.mean_rating, gate.min_mean_rating),
        ("review_approval_rate", summary.approval_rate, gate.min_approval_rate),
    ]
    if gate.min_agreement is not None:
        rules.append(("review_agreement", summary.agreement, gate.min_agreement))
    checks = [responses]
    for name, value, threshold in rules:
        if enough and value is not None:
            checks.append(_judged(name, "review", value, threshold, ">=", "reviews"))
        else:
            why = "none of the responses gives it yet" if enough else "too few responses yet"
            checks.append(_pending(name, "review", ">=", why, value=value, threshold=threshold))
    return checks


def outcome_of(checks: list[Check]) -> Outcome:
    statuses = {check.status for check in checks}
    if CheckStatus.FAILED in statuses:
        return Outcome.REJECT
    if CheckStatus.WAITING in statuses:
        return Outcome.WAIT
    return Outcome.APPROVE


REASON_STATUS: dict[Outcome, CheckStatus] = {
    Outcome.REJECT: CheckStatus.FAILED,
    Outcome.WAIT: CheckStatus.WAITING,
    Outcome.APPROVE: CheckStatus.PASSED,
}
REASON_PREFIX: dict[Outcome, str] = {
    Outcome.REJECT: "rejected by the gate",
    Outcome.WAIT: "waiting for evidence",
    Outcome.APPROVE: "approved by the gate",
}


def decide(
    model: str,
    version: str,
    figures: Figures | None,
    reviews: ReviewEvidence,
    gate: GateSettings,
) -> Decision:
    """The decision on one candidate; its reason names the numbers that decided it."""
    checks = [*automatic_checks(figures, gate), *review_checks(reviews, gate)]
    outcome = outcome_of(checks)
    deciding = "; ".join(c.detail for c in checks if c.status == REASON_STATUS[outcome])
    reviewed = (
        f"{reviews.summary.responses} review response(s) via {reviews.backend}"
        if reviews.human
        else f"no human review ({reviews.backend} backend: automatic metrics only)"
    )
    return Decision(
        model=model,
        version=version,
        outcome=outcome,
        reason=f"{REASON_PREFIX[outcome]}, {reviewed}: {deciding}",
        checks=checks,
        review_backend=reviews.backend,
        human_review=reviews.human,
        notices=[reviews.notice] if reviews.notice else [],
        figures=figures,
        reviews=reviews.summary,
        thresholds=gate,
    )
