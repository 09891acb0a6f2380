"""The gate's decision as a pure function: thresholds relative to the base, reviews that
wait until enough are in, and the auto backend's announcement."""

from __future__ import annotations

import logging

import pytest

from tests.promotion.conftest import CraftedReviews
from twin_lib.promotion.decision import (
    HIT_AT_K,
    PERPLEXITY,
    REFUSAL_RATE,
    STYLE_EMBEDDING,
    STYLE_TFIDF,
    Check,
    CheckStatus,
    Figures,
    MetricPair,
    Outcome,
    decide,
)
from twin_lib.promotion.reviews import (
    AUTO_NOTICE,
    AutoReviewBackend,
    ReviewedRecord,
    ReviewEvidence,
    ReviewResponse,
    UnknownReviewBackendError,
    review_backend,
    summarise,
)
from twin_lib.registry.models import CodeVersion, ModelVersion, StatusChange
from twin_lib.settings import GateSettings, TwinSettings, to_env

GATE = GateSettings()


def good(**changes: MetricPair) -> Figures:
    figures = {
        PERPLEXITY: MetricPair(candidate=10.0, base=12.0),
        STYLE_TFIDF: MetricPair(candidate=0.6, base=0.2),
        STYLE_EMBEDDING: MetricPair(candidate=0.5, base=0.3),
        HIT_AT_K: MetricPair(candidate=0.8, base=0.8),
        REFUSAL_RATE: MetricPair(candidate=0.0, base=0.0),
    }
    return figures | changes


def auto_evidence() -> ReviewEvidence:
    return ReviewEvidence(
        backend="auto", human=False, model="twin", version="v0002", notice=AUTO_NOTICE
    )


def human_evidence(*responses: tuple[str, int, bool]) -> ReviewEvidence:
    backend = CraftedReviews()
    backend.respond(*responses)
    return ReviewEvidence(
        backend="crafted",
        human=True,
        model="twin",
        version="v0002",
        records=backend.collect(_model()).records,
    )


def _model() -> ModelVersion:
    return ModelVersion(
        name="twin",
        version="v0002",
        history=[StatusChange(status="candidate", by="test", reason="trained")],
        base_model="base",
        dataset_snapshots={},
        hyperparameters={},
        code=CodeVersion(package="llm-twin", version="0"),
        output_uri="s3://m/twin/v0002/",
        adapter_uri="s3://m/twin/v0002/adapter/",
        merged_uri="s3://m/twin/v0002/merged/",
    )


def check(decision_checks: list[Check], name: str) -> Check:
    return next(c for c in decision_checks if c.name == name)


@pytest.mark.parametrize(
    ("base", "outcome"),
    [(10.0, Outcome.APPROVE), (9.6, Outcome.APPROVE), (9.4, Outcome.REJECT)],
)
def test_perplexity_is_judged_against_the_base(base: float, outcome: Outcome) -> None:
    """The same candidate figure (10.0) passes or fails depending only on its base:
    allowed up to base x 1.05."""
    figures = good(**{PERPLEXITY: MetricPair(candidate=10.0, base=base)})
    decision = decide("twin", "v0002", figures, auto_evidence(), GATE)
    assert decision.outcome == outcome
    found = check(decision.checks, PERPLEXITY)
    assert found.threshold == pytest.approx(base * 1.05)
    assert found.passed is (outcome == Outcome.APPROVE)


def test_style_below_the_base_rejects_and_the_reason_names_the_numbers() -> None:
    figures = good(**{STYLE_TFIDF: MetricPair(candidate=0.31, base=0.42)})
    decision = decide("twin", "v0002", figures, auto_evidence(), GATE)
    assert decision.outcome == Outcome.REJECT
    assert check(decision.checks, STYLE_TFIDF).status == CheckStatus.FAILED
    assert "style_position_tfidf 0.31 < 0.42 (base 0.42 + 0)" in decision.reason
    assert decision.reason.startswith("rejected by the gate, no human review")


def test_style_gain_setting_raises_the_bar_above_the_base() -> None:
    figures = good(**{STYLE_TFIDF: MetricPair(candidate=0.25, base=0.2)})
    assert decide("twin", "v2", figures, auto_evidence(), GATE).outcome == Outcome.APPROVE
    strict = GATE.model_copy(update={"min_style_gain": 0.1})
    assert decide("twin", "v2", figures, auto_evidence(), strict).outcome == Outcome.REJECT


def test_hit_at_k_is_a_floor_and_refusals_may_not_rise_much_above_the_base() -> None:
    low_hits = good(**{HIT_AT_K: MetricPair(candidate=0.4, base=0.4)})
    assert decide("twin", "v2", low_hits, auto_evidence(), GATE).outcome == Outcome.REJECT
    refusing = good(**{REFUSAL_RATE: MetricPair(candidate=0.5, base=0.25)})
    decision = decide("twin", "v2", refusing, auto_evidence(), GATE)
    assert decision.outcome == Outcome.REJECT
    assert check(decision.checks, REFUSAL_RATE).threshold == pytest.approx(0.35)


def test_an_uncalibrated_style_position_is_shown_as_skipped_not_decided_on() -> None:
    figures = good(**{STYLE_EMBEDDING: MetricPair(candidate=None, base=None)})
    decision = decide("twin", "v2", figures, auto_evidence(), GATE)
    assert decision.outcome == Outcome.APPROVE
    assert check(decision.checks, STYLE_EMBEDDING).status == CheckStatus.SKIPPED


def test_without_an_evaluation_the_candidate_waits() -> None:
    decision = decide("twin", "v2", None, auto_evidence(), GATE)
    assert decision.outcome == Outcome.WAIT
    assert "twin evaluate" in decision.reason


def test_too_few_reviews_wait_even_when_the_few_are_bad() -> None:
    decision = decide("twin", "v2", good(), human_evidence(("ann", 1, False)), GATE)
    assert decision.outcome == Outcome.WAIT
    rating = check(decision.checks, "review_mean_rating")
    assert (rating.status, rating.value) == (CheckStatus.WAITING, 1.0)
    assert "review_responses 1 of 3 needed" in decision.reason


def test_enough_reviews_decide_by_rating_and_approval_rate() -> None:
    liked = human_evidence(("ann", 5, True), ("bob", 4, True), ("cy", 3, False))
    decision = decide("twin", "v2", good(), liked, GATE)
    assert decision.outcome == Outcome.APPROVE
    assert decision.human_review and not decision.notices
    assert "3 review response(s) via crafted" in decision.reason
    disliked = human_evidence(("ann", 2, False), ("bob", 3, True), ("cy", 2, False))
    decision = decide("twin", "v2", good(), disliked, GATE)
    assert decision.outcome == Outcome.REJECT
    assert "review_mean_rating 2.333 < 3.5" in decision.reason
    assert "review_approval_rate 0.3333 < 0.6" in decision.reason


def test_a_failed_metric_rejects_while_reviews_still_wait() -> None:
    figures = good(**{PERPLEXITY: MetricPair(candidate=20.0, base=12.0)})
    decision = decide("twin", "v2", figures, human_evidence(("ann", 5, True)), GATE)
    assert decision.outcome == Outcome.REJECT


def test_review_summary_aggregates_records_and_agreement() -> None:
    records = [
        ReviewedRecord(
            sample_id="a",
            responses=[
                ReviewResponse(reviewer="ann", rating=5, approve=True),
                ReviewResponse(reviewer="bob", rating=3, approve=True),
                ReviewResponse(reviewer="cy", rating=1, approve=False),
            ],
        ),
        ReviewedRecord(
            sample_id="b",
            responses=[
                ReviewResponse(reviewer="ann", rating=4, approve=True),
                ReviewResponse(reviewer="bob", approve=True),
            ],
        ),
        ReviewedRecord(sample_id="c"),
    ]
    summary = summarise(records)
    assert (summary.records, summary.reviewed_records, summary.responses) == (3, 2, 5)
    assert summary.reviewers == 3
    assert summary.mean_rating == pytest.approx(13 / 4)
    assert summary.approval_rate == pytest.approx(4 / 5)
    # record a: 1 of 3 pairs agree; record b: 1 of 1.
    assert summary.agreement == pytest.approx(2 / 4)
    assert summarise([]).agreement is None


def test_agreement_threshold_waits_until_two_reviewers_judged_one_record() -> None:
    gate = GATE.model_copy(update={"min_agreement": 0.5})
    evidence = human_evidence(("ann", 5, True), ("bob", 5, True), ("cy", 4, True))
    decision = decide("twin", "v2", good(), evidence, gate)
    assert decision.outcome == Outcome.WAIT
    assert check(decision.checks, "review_agreement").status == CheckStatus.WAITING


def test_auto_backend_announces_itself_on_every_use(caplog: pytest.LogCaptureFixture) -> None:
    backend = AutoReviewBackend()
    with caplog.at_level(logging.WARNING, logger="twin_lib.promotion.reviews"):
        request = backend.request_review(_model(), [])
        evidence = backend.collect(_model())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [AUTO_NOTICE, AUTO_NOTICE]
    assert (request.samples, request.human) == (0, False)
    decision = decide("twin", "v0002", good(), evidence, GATE)
    assert decision.notices == [AUTO_NOTICE]
    assert not decision.human_review
    assert AUTO_NOTICE in decision.markdown()
    assert "no human review (auto backend: automatic metrics only)" in decision.reason


def test_auto_is_the_default_only_without_an_explicit_review_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in ("TWIN_ARGILLA__URL", "TWIN_GATE__REVIEW_BACKEND"):
        monkeypatch.delenv(key, raising=False)
    assert TwinSettings(_env_file=None).gate.review_backend == "auto"
    monkeypatch.setenv("TWIN_ARGILLA__URL", "http://argilla.internal:6900")
    configured = TwinSettings(_env_file=None)
    assert configured.gate.review_backend == "argilla"
    assert review_backend(configured).name == "argilla"
    with pytest.raises(UnknownReviewBackendError, match="TWIN_GATE__REVIEW_BACKEND=auto"):
        review_backend(configured, "labelstudio")
    monkeypatch.setenv("TWIN_GATE__REVIEW_BACKEND", "auto")
    assert review_backend(TwinSettings(_env_file=None)).name == "auto"


def test_a_child_process_inherits_the_resolved_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """``to_env`` writes the Argilla URL's default too; the child must still decide with the
    backend the parent resolved, not re-derive Argilla from that URL."""
    for key in ("TWIN_ARGILLA__URL", "TWIN_GATE__REVIEW_BACKEND"):
        monkeypatch.delenv(key, raising=False)
    env = to_env(TwinSettings(_env_file=None))
    assert "TWIN_ARGILLA__URL" in env
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert TwinSettings(_env_file=None).gate.review_backend == "auto"
