"""Promotion steps: ask for reviews, decide on a candidate, deploy only what was approved.

The decision is recorded where the version lives: the status change (candidate -> approved
or rejected) with a reason naming the numbers, the whole decision as ``decision.json`` and
the review evidence it was taken on (every record, every reviewer's ratings and comment) as
``reviews.json`` beside the version. A candidate still waiting for evidence changes
nothing (a log line says what it waits for), so a scheduled run simply decides again later.
Deploying goes through :func:`twin_lib.steps.deploy.deploy_version` on a cluster, or a
callable the caller gives (a local server), and only ever for a version the registry holds
as approved at that moment; the version it replaces stays approved for rollback (the
deployer's job). Each public function is one call for a KFP component or a CLI command.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from twin_lib.hashing import sha256_text
from twin_lib.promotion.decision import (
    GROUNDING,
    HIT_AT_K,
    JUDGE_ACCURACY,
    JUDGE_STYLE,
    PERPLEXITY,
    REFUSAL_RATE,
    STYLE_EMBEDDING,
    STYLE_TFIDF,
    Check,
    Decision,
    Figures,
    MetricPair,
    Outcome,
    decide,
    review_checks,
)
from twin_lib.promotion.reviews import (
    ReviewEvidence,
    ReviewRequest,
    ReviewSample,
    review_backend,
)
from twin_lib.registry.models import ModelStatus, ModelVersion
from twin_lib.registry.store import ModelRegistry, split_s3_uri
from twin_lib.settings import TwinSettings
from twin_lib.storage.errors import ObjectNotFoundError

if TYPE_CHECKING:
    from twin_lib.evaluation.results import EvaluationResult

log = logging.getLogger(__name__)

DECISION_FILE = "decision.json"
REVIEW_REQUEST_FILE = "review_request.json"
REVIEWS_FILE = "reviews.json"

Deploy = Callable[[ModelVersion], Any]
"""Puts an approved version in front of users; what it returns is kept in the result."""


class PromotionError(ValueError):
    """There is nothing the gate may decide on; the message says what to do."""


class NoCandidateError(PromotionError):
    """No version of the model waits for a decision."""


class ApprovedNotDeployedError(RuntimeError):
    """The gate approved and recorded the version, then deploying it failed."""

    def __init__(self, decision: Decision, cause: BaseException) -> None:
        super().__init__(
            f"{decision.model} {decision.version} was approved (recorded in the registry) but "
            f"not deployed: {cause}. Once that is fixed: `twin deploy {decision.version}`"
        )
        self.decision = decision


class PromotionResult(BaseModel):
    """What ``promote`` did: the decision and, when approved, the deployment."""

    decision: Decision
    deployed: bool
    deployment: dict[str, Any] | None = None

    def markdown(self) -> str:
        done = "deployed" if self.deployed else "not deployed"
        return f"{self.decision.markdown()}\n**{self.decision.version} {done}**\n"


class ReviewStatus(BaseModel):
    """Where the reviews of a version stand, against the gate's review thresholds."""

    model: str
    version: str
    status: ModelStatus
    request: ReviewRequest | None
    evidence: ReviewEvidence
    checks: list[Check]
    decision: Decision | None
    recorded: ReviewEvidence | None = None
    """The evidence the decision was taken on, as stored with the version."""


def _registry(settings: TwinSettings) -> ModelRegistry:
    return ModelRegistry(settings.minio, settings.registry)


def _model_name(settings: TwinSettings, name: str | None) -> str:
    return name or settings.serving.model_name or settings.registry.default_model


def _location(registry: ModelRegistry, model: ModelVersion, file: str) -> tuple[str, str]:
    return split_s3_uri(f"{registry.version_uri(model.name, model.version)}{file}")


def _read_beside(registry: ModelRegistry, model: ModelVersion, file: str) -> Any | None:
    try:
        return registry.store.get_json(*_location(registry, model, file))
    except ObjectNotFoundError:
        return None


def candidate_version(
    settings: TwinSettings, version: str | None = None, name: str | None = None
) -> ModelVersion:
    """``version`` if it is a candidate; without one, the newest candidate."""
    registry, model_name = _registry(settings), _model_name(settings, name)
    if version is None:
        waiting = [
            v for v in registry.list_versions(model_name) if v.status == ModelStatus.CANDIDATE
        ]
        if not waiting:
            raise NoCandidateError(
                f"no version of {model_name} is a candidate waiting for a decision "
                "(`twin models list` shows every version and its status)"
            )
        return waiting[-1]
    model = registry.get(model_name, version)
    if model.status != ModelStatus.CANDIDATE:
        last = model.history[-1]
        raise PromotionError(
            f"{model.name} {model.version} is already {model.status} ({last.reason}; by "
            f"{last.by}): the gate decides candidates only. "
            + (
                f"Deploy it with `twin deploy {model.version}`"
                if model.status == ModelStatus.APPROVED
                else f"`twin models show {model.name} {model.version}` shows its history"
            )
        )
    return model


def gate_figures(result: EvaluationResult) -> Figures:
    """The evaluation's figures the gate judges, candidate beside base."""
    twin, base = result.candidate, result.base
    figures = {
        PERPLEXITY: MetricPair(
            candidate=twin.perplexity.perplexity, base=base.perplexity.perplexity
        ),
        STYLE_TFIDF: MetricPair(
            candidate=twin.style_position.tfidf, base=base.style_position.tfidf
        ),
        STYLE_EMBEDDING: MetricPair(
            candidate=twin.style_position.embedding, base=base.style_position.embedding
        ),
        # One retriever serves both models, so hit@k is the same for both.
        HIT_AT_K: MetricPair(candidate=result.retrieval.hit_at_k, base=result.retrieval.hit_at_k),
        GROUNDING: MetricPair(candidate=twin.grounding.rate, base=base.grounding.rate),
        REFUSAL_RATE: MetricPair(
            candidate=twin.answers.refusal_rate, base=base.answers.refusal_rate
        ),
    }
    if result.judge is not None:
        for name, verdicts in (
            (JUDGE_STYLE, result.judge.style),
            (JUDGE_ACCURACY, result.judge.accuracy),
        ):
            figures[name] = MetricPair(
                candidate=verdicts.twin_win_rate, base=1 - verdicts.twin_win_rate
            )
    return figures


def _evaluation(settings: TwinSettings, model: ModelVersion) -> EvaluationResult | None:
    """The evaluation the version's registry entry points to (its latest one)."""
    from twin_lib.evaluation.results import EvaluationResult

    json_uri = model.evaluation.get("json_uri")
    if not json_uri:
        return None
    result = EvaluationResult.model_validate(
        _registry(settings).store.get_json(*split_s3_uri(json_uri))
    )
    _check_about(
        model,
        result.model,
        result.version,
        f"its evaluation {json_uri}",
        f"evaluate it again (`twin evaluate {model.version}`)",
    )
    return result


def _check_about(model: ModelVersion, name: str, version: str, what: str, fix: str) -> None:
    """Evidence about another version never decides this one."""
    if (name, version) != (model.name, model.version):
        raise PromotionError(
            f"{model.name} {model.version}: {what} is about {name} {version}, so nothing was "
            f"decided; {fix}"
        )


def review_samples(result: EvaluationResult, limit: int) -> list[ReviewSample]:
    """The evaluation's side-by-side answers, ids derived from version and question."""
    return [
        ReviewSample(
            sample_id=f"{result.version}-{sha256_text(sample.question)[:16]}",
            question=sample.question,
            answer=sample.twin_answer,
            base_answer=sample.base_answer,
            reference=sample.reference,
            sources=[source.url for source in sample.sources],
        )
        for sample in result.samples[:limit]
    ]


def request_review(
    settings: TwinSettings,
    version: str | None = None,
    *,
    name: str | None = None,
    backend: str | None = None,
) -> ReviewRequest:
    """Put the candidate's evaluated answers in front of reviewers (the training pipeline's
    last step); what was requested is kept as ``review_request.json`` beside the version.

    A version decided already (a re-run of the pipeline that reused it) keeps the request it
    was decided on; reviewers are not asked again."""
    if version is not None:
        registry = _registry(settings)
        model = registry.get(_model_name(settings, name), version)
        stored = _read_beside(registry, model, REVIEW_REQUEST_FILE)
        if model.status != ModelStatus.CANDIDATE and stored is not None:
            log.info(
                "already decided; its review request stands",
                extra={"model": f"{model.name}/{model.version}", "status": str(model.status)},
            )
            return ReviewRequest.model_validate(stored)
    model = candidate_version(settings, version, name)
    result = _evaluation(settings, model)
    if result is None:
        raise PromotionError(
            f"{model.name} {model.version} has no evaluation, so there is nothing to review: "
            f"run `twin evaluate {model.version}` first"
        )
    samples = review_samples(result, settings.gate.review_samples)
    request = review_backend(settings, backend).request_review(model, samples)
    registry = _registry(settings)
    registry.store.put_json(
        *_location(registry, model, REVIEW_REQUEST_FILE), request.model_dump(mode="json")
    )
    log.info(
        "review requested",
        extra={
            "model": f"{model.name}/{model.version}",
            "backend": request.backend,
            "samples": request.samples,
        },
    )
    return request


def decide_version(
    settings: TwinSettings,
    version: str | None = None,
    *,
    by: str,
    name: str | None = None,
    backend: str | None = None,
    record: bool = True,
) -> Decision:
    """Collect the evidence on a candidate (default: the newest), decide, and record an
    approval or rejection unless ``record`` is False (a dry run)."""
    model = candidate_version(settings, version, name)
    reviews = review_backend(settings, backend).collect(model)
    _check_about(
        model,
        reviews.model,
        reviews.version,
        f"the {reviews.backend} review evidence",
        "check the review backend",
    )
    result = _evaluation(settings, model)
    figures = None if result is None else gate_figures(result)
    decision = decide(model.name, model.version, figures, reviews, settings.gate)
    decision = decision.model_copy(update={"by": by})
    facts = {
        "model": f"{model.name}/{model.version}",
        "outcome": str(decision.outcome),
        "review_backend": decision.review_backend,
        "human_review": decision.human_review,
    }
    if decision.outcome == Outcome.WAIT or not record:
        log.info("gate decision not recorded", extra={**facts, "reason": decision.reason})
        return decision
    status = ModelStatus.APPROVED if decision.outcome == Outcome.APPROVE else ModelStatus.REJECTED
    registry = _registry(settings)
    registry.transition(model.name, model.version, status, by=by, reason=decision.reason)
    decision = decision.model_copy(update={"recorded": True})
    registry.store.put_json(
        *_location(registry, model, REVIEWS_FILE), reviews.model_dump(mode="json")
    )
    registry.store.put_json(
        *_location(registry, model, DECISION_FILE), decision.model_dump(mode="json")
    )
    log.info("gate decision recorded", extra=facts)
    return decision


def read_decision(
    settings: TwinSettings, version: str, *, name: str | None = None
) -> Decision | None:
    """The recorded decision on a version; None when the gate has not decided it."""
    registry = _registry(settings)
    model = registry.get(_model_name(settings, name), version)
    data = _read_beside(registry, model, DECISION_FILE)
    return None if data is None else Decision.model_validate(data)


def review_status(
    settings: TwinSettings,
    version: str,
    *,
    name: str | None = None,
    backend: str | None = None,
) -> ReviewStatus:
    """What was requested, what reviewers said so far, and the review checks on it."""
    registry = _registry(settings)
    model = registry.get(_model_name(settings, name), version)
    request = _read_beside(registry, model, REVIEW_REQUEST_FILE)
    decision = _read_beside(registry, model, DECISION_FILE)
    recorded = _read_beside(registry, model, REVIEWS_FILE)
    evidence = review_backend(settings, backend).collect(model)
    return ReviewStatus(
        model=model.name,
        version=model.version,
        status=model.status,
        request=None if request is None else ReviewRequest.model_validate(request),
        evidence=evidence,
        checks=review_checks(evidence, settings.gate),
        decision=None if decision is None else Decision.model_validate(decision),
        recorded=None if recorded is None else ReviewEvidence.model_validate(recorded),
    )


def cluster_deploy(settings: TwinSettings, *, by: str) -> Deploy:
    """Deploy through the KServe rollout (canary, check, promote; see steps.deploy)."""
    from twin_lib.steps.deploy import deploy_version

    return lambda model: deploy_version(settings, model.version, by=by, name=model.name)


def _as_record(value: Any) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(key): item for key, item in value.items()}
    return {} if value is None else {"result": str(value)}


def promote(
    settings: TwinSettings,
    version: str | None = None,
    *,
    by: str,
    name: str | None = None,
    backend: str | None = None,
    deploy: Deploy | None = None,
    dry_run: bool = False,
) -> PromotionResult:
    """Decide on a candidate, then deploy it if, and only if, it was approved.

    ``deploy`` defaults to the cluster rollout. A dry run decides without recording or
    deploying. The registry is read again right before deploying and the deployer's own
    guard refuses anything not approved at that moment.
    """
    from twin_lib.steps.deploy import check_deployable

    decision = decide_version(
        settings, version, by=by, name=name, backend=backend, record=not dry_run
    )
    if decision.outcome != Outcome.APPROVE or dry_run:
        return PromotionResult(decision=decision, deployed=False)
    model = _registry(settings).get(decision.model, decision.version)
    check_deployable(model)
    try:
        deployed = (deploy or cluster_deploy(settings, by=by))(model)
    except Exception as error:
        raise ApprovedNotDeployedError(decision, error) from error
    log.info("approved version deployed", extra={"model": f"{model.name}/{model.version}"})
    return PromotionResult(decision=decision, deployed=True, deployment=_as_record(deployed))
