"""The gate on the real MinIO registry: decisions recorded with their evidence, only an
approved version deployed, the previous one left alone, waiting changes nothing.

Deployment goes through a callable that records what it was given: the InferenceService
path is tested against the API server in tests/k8s; here what matters is whether and with
what the gate calls it.
"""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from tests.promotion.conftest import CraftedReviews, register
from tests.promotion.evaluations import crafted_evaluation, store_evaluation
from twin_lib.cli import app
from twin_lib.promotion import reviews
from twin_lib.promotion.decision import CheckStatus, Outcome
from twin_lib.promotion.reviews import AUTO_NOTICE, ReviewEvidence, ReviewResponse
from twin_lib.registry.models import ModelStatus, ModelVersion
from twin_lib.registry.store import ModelRegistry
from twin_lib.settings import TwinSettings, to_env
from twin_lib.steps.deploy import NotDeployableError, deploy_version
from twin_lib.steps.promotion import (
    ApprovedNotDeployedError,
    PromotionError,
    decide_version,
    promote,
    read_decision,
    request_review,
    review_status,
)

pytestmark = pytest.mark.integration


class RecordingDeploy:
    """A deploy target that keeps what it was asked to deploy, and its status then."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ModelStatus]] = []

    def __call__(self, model: ModelVersion) -> dict[str, str]:
        self.calls.append((model.version, model.status))
        return {"action": "created", "version": model.version}


def _deployed_and_candidate(
    registry: ModelRegistry, name: str, **figures: object
) -> tuple[ModelVersion, ModelVersion]:
    """v0001 serving users, v0002 a candidate evaluated with ``figures``."""
    serving = register(registry, name, ModelStatus.APPROVED, ModelStatus.DEPLOYED)
    candidate = register(registry, name)
    store_evaluation(registry, crafted_evaluation(candidate, **figures))  # type: ignore[arg-type]
    return serving, candidate


def _name(settings: TwinSettings) -> str:
    return settings.registry.default_model


def test_rejected_candidate_is_recorded_with_its_numbers_and_never_deployed(
    gate_settings: TwinSettings, registry: ModelRegistry
) -> None:
    name = _name(gate_settings)
    serving, candidate = _deployed_and_candidate(registry, name, perplexity=(14.2, 12.0))
    deploy = RecordingDeploy()

    result = promote(gate_settings, by="test gate", deploy=deploy)

    assert result.decision.outcome == Outcome.REJECT and not result.deployed
    assert deploy.calls == []
    stored = registry.get(name, candidate.version)
    assert stored.status == ModelStatus.REJECTED
    assert (stored.history[-1].by, stored.history[-1].reason) == (
        "test gate",
        result.decision.reason,
    )
    assert "perplexity 14.2 > 12.6 (base 12 x 1.05)" in stored.history[-1].reason
    assert read_decision(gate_settings, candidate.version) == result.decision
    assert result.decision.recorded
    assert registry.get(name, serving.version).status == ModelStatus.DEPLOYED
    with pytest.raises(PromotionError, match="already rejected"):
        promote(gate_settings, candidate.version, by="test gate", deploy=deploy)
    with pytest.raises(NotDeployableError, match="is rejected"):
        deploy_version(gate_settings, candidate.version, by="test gate")
    assert deploy.calls == []


def test_too_few_reviews_wait_without_any_change_then_enough_approve(
    gate_settings: TwinSettings,
    registry: ModelRegistry,
    crafted_reviews: CraftedReviews,
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = _name(gate_settings)
    _, candidate = _deployed_and_candidate(registry, name)
    crafted_reviews.respond(("ann", 5, True), ("bob", 4, True))
    deploy = RecordingDeploy()

    with caplog.at_level(logging.INFO, logger="twin_lib.steps.promotion"):
        waiting = promote(gate_settings, by="test gate", backend="crafted", deploy=deploy)

    assert waiting.decision.outcome == Outcome.WAIT and not waiting.deployed
    assert deploy.calls == []
    unchanged = registry.get(name, candidate.version)
    assert (unchanged.status, unchanged.history) == (ModelStatus.CANDIDATE, candidate.history)
    assert read_decision(gate_settings, candidate.version) is None
    assert any(r.getMessage() == "gate decision not recorded" for r in caplog.records)

    crafted_reviews.respond(("ann", 5, True), ("bob", 4, True), ("cy", 4, True))
    approved = promote(gate_settings, by="test gate", backend="crafted", deploy=deploy)
    assert approved.decision.outcome == Outcome.APPROVE
    assert deploy.calls == [(candidate.version, ModelStatus.APPROVED)]
    assert "5 review response(s) via crafted" in approved.decision.reason


def test_approved_candidate_is_deployed_and_the_previous_version_left_for_rollback(
    gate_settings: TwinSettings, registry: ModelRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    name = _name(gate_settings)
    serving, candidate = _deployed_and_candidate(registry, name)
    deploy = RecordingDeploy()

    with caplog.at_level(logging.WARNING):
        result = promote(gate_settings, by="test gate", deploy=deploy)

    assert result.decision.outcome == Outcome.APPROVE and result.deployed
    assert deploy.calls == [(candidate.version, ModelStatus.APPROVED)]
    assert result.deployment == {"action": "created", "version": candidate.version}
    assert registry.get(name, candidate.version).status == ModelStatus.APPROVED
    previous = registry.get(name, serving.version)
    assert (previous.status, previous.history) == (ModelStatus.DEPLOYED, serving.history)
    # The auto backend said so in the log, the record and the registry's reason.
    assert AUTO_NOTICE in [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    recorded = read_decision(gate_settings, candidate.version)
    assert recorded is not None
    assert (recorded.human_review, recorded.notices) == (False, [AUTO_NOTICE])
    assert "no human review" in registry.get(name, candidate.version).history[-1].reason


def test_the_newest_candidate_is_decided_and_a_version_without_evaluation_waits(
    gate_settings: TwinSettings, registry: ModelRegistry
) -> None:
    name = _name(gate_settings)
    _, evaluated = _deployed_and_candidate(registry, name)
    newest = register(registry, name)
    decision = decide_version(gate_settings, by="test gate")
    assert (decision.version, decision.outcome) == (newest.version, Outcome.WAIT)
    assert registry.get(name, newest.version).status == ModelStatus.CANDIDATE
    older = decide_version(gate_settings, evaluated.version, by="test gate", record=False)
    assert older.outcome == Outcome.APPROVE and not older.recorded
    assert registry.get(name, evaluated.version).status == ModelStatus.CANDIDATE
    with pytest.raises(NotDeployableError, match="is candidate"):
        deploy_version(gate_settings, evaluated.version, by="test gate")


def test_a_failed_deployment_keeps_the_approval_and_says_how_to_deploy_later(
    gate_settings: TwinSettings, registry: ModelRegistry
) -> None:
    name = _name(gate_settings)
    serving, candidate = _deployed_and_candidate(registry, name)

    def unreachable(model: ModelVersion) -> None:
        raise ConnectionError("cluster unreachable")

    with pytest.raises(ApprovedNotDeployedError, match=f"twin deploy {candidate.version}"):
        promote(gate_settings, by="test gate", deploy=unreachable)
    assert registry.get(name, candidate.version).status == ModelStatus.APPROVED
    assert registry.get(name, serving.version).status == ModelStatus.DEPLOYED
    recorded = read_decision(gate_settings, candidate.version)
    assert recorded is not None and recorded.outcome == Outcome.APPROVE


def test_review_request_sends_the_evaluated_samples_and_status_reads_responses(
    gate_settings: TwinSettings, registry: ModelRegistry, crafted_reviews: CraftedReviews
) -> None:
    name = _name(gate_settings)
    _, candidate = _deployed_and_candidate(registry, name)
    first = request_review(gate_settings, backend="crafted")
    again = request_review(gate_settings, backend="crafted")
    assert (first.samples, first.version) == (3, candidate.version)
    sent = [samples for _, samples in crafted_reviews.requested]
    assert [s.sample_id for s in sent[0]] == [s.sample_id for s in sent[1]]
    assert sent[0][0].answer == "twin answer 0" and sent[0][0].base_answer == "base answer 0"
    crafted_reviews.responses[sent[0][0].sample_id].append(
        ReviewResponse(reviewer="ann", rating=4, approve=True)
    )
    found = review_status(gate_settings, candidate.version, backend="crafted")
    assert found.request is not None and found.request.location == again.location
    assert found.evidence.summary.responses == 1
    assert found.checks[0].name == "review_responses"
    assert found.checks[0].status == CheckStatus.WAITING


def _cli(settings: TwinSettings, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=to_env(settings))
    return result.exit_code, result.output


def test_cli_shows_the_auto_notice_and_a_dry_run_records_nothing(
    gate_settings: TwinSettings, registry: ModelRegistry
) -> None:
    name = _name(gate_settings)
    _, candidate = _deployed_and_candidate(registry, name, style=(0.1, 0.4))
    code, output = _cli(gate_settings, "promote", "--dry-run")
    assert code == 0, output
    assert "NO HUMAN REVIEW" in output
    assert f"{name} {candidate.version} would be: reject" in output
    assert registry.get(name, candidate.version).status == ModelStatus.CANDIDATE

    code, output = _cli(gate_settings, "promote", candidate.version)
    assert code == 1, output
    assert "NO HUMAN REVIEW" in output and "rejected" in output
    assert registry.get(name, candidate.version).status == ModelStatus.REJECTED

    code, output = _cli(gate_settings, "reviews", "status", candidate.version)
    assert code == 0, output
    assert "NO HUMAN REVIEW" in output and "decided reject by twin promote" in output


def test_evidence_about_another_version_decides_nothing(
    gate_settings: TwinSettings, registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A summary pointing at another version's evaluation (copied metadata, a mix-up) and a
    backend answering for another version are refused, not counted."""
    name = _name(gate_settings)
    serving, candidate = _deployed_and_candidate(registry, name)
    other = register(registry, name)
    copied = registry.get(name, candidate.version).evaluation
    registry.record_evaluation(name, other.version, copied)
    with pytest.raises(PromotionError, match=f"is about {name} {candidate.version}"):
        decide_version(gate_settings, other.version, by="test gate")
    assert registry.get(name, other.version).status == ModelStatus.CANDIDATE

    class Confused(CraftedReviews):
        def collect(self, model: ModelVersion) -> ReviewEvidence:
            return super().collect(serving)

    monkeypatch.setitem(reviews.BACKENDS, "confused", lambda _settings: Confused())
    with pytest.raises(PromotionError, match="check the review backend"):
        decide_version(gate_settings, candidate.version, by="test gate", backend="confused")
    assert registry.get(name, candidate.version).status == ModelStatus.CANDIDATE
