"""Reviews of a candidate through one interface, whatever collects them.

A backend sends sample answers to reviewers (``request_review``) and later reads back what
they said (``collect``). The gate sees only :class:`ReviewEvidence`: per-record responses
and their aggregate (responses, mean rating, approval rate, agreement between reviewers).

Backends are found by name in :data:`BACKENDS`, so a review service plugs in by adding one
entry (a factory taking the settings, importing its client lazily). This module ships
``auto``: no human looks at the model and the gate decides on automatic metrics alone. That
is a weaker guarantee than a review, so ``auto`` says so on every use: a WARNING log line
and a notice the decision record and every CLI output carry.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from datetime import datetime
from importlib import import_module
from statistics import fmean
from typing import Protocol

from pydantic import BaseModel, Field, computed_field

from twin_lib.registry.models import ModelVersion, utc_now
from twin_lib.settings import TwinSettings

log = logging.getLogger(__name__)

AUTO = "auto"
AUTO_NOTICE = (
    "NO HUMAN REVIEW: the 'auto' review backend decides on automatic metrics only "
    "(configure a review service or set gate.review_backend to have people review answers)"
)


class UnknownReviewBackendError(LookupError):
    """The configured review backend is not one this installation has."""


class ReviewSample(BaseModel):
    """One answer put in front of reviewers: the twin's, with the base's beside it."""

    sample_id: str = Field(description="stable per version, so a repeated request is idempotent")
    question: str
    answer: str = Field(description="the candidate's answer")
    base_answer: str | None = None
    reference: str | None = Field(default=None, description="the author's own held-out answer")
    sources: list[str] = Field(default_factory=list, description="URLs of the passages used")


class ReviewRequest(BaseModel):
    """What a backend did when asked for reviews (``review_request.json`` beside the version)."""

    backend: str
    model: str
    version: str
    human: bool
    samples: int = Field(description="samples put in front of reviewers")
    location: str | None = Field(default=None, description="where reviewers find them")
    note: str
    requested_at: datetime = Field(default_factory=utc_now)


class ReviewResponse(BaseModel):
    """One reviewer's submitted answer on one record.

    ``rating`` is what the gate averages: the lower of ``voice`` and ``grounding`` (an
    answer is only as good as its weaker side), or the one rating a backend gives. The
    separate ratings, and the base answer's, are kept so that a reviewer's judgement can be
    read back in full from the registry."""

    reviewer: str
    rating: int | None = Field(default=None, ge=1, le=5)
    approve: bool | None = Field(default=None, description="would they let users see it")
    comment: str | None = None
    submitted_at: datetime | None = None
    voice: int | None = Field(default=None, ge=1, le=5, description="the candidate's voice")
    grounding: int | None = Field(default=None, ge=1, le=5, description="the candidate's grounding")
    base_voice: int | None = Field(default=None, ge=1, le=5)
    base_grounding: int | None = Field(default=None, ge=1, le=5)
    base_approve: bool | None = None


class ReviewedRecord(BaseModel):
    """One sample and every submitted response to it."""

    sample_id: str
    question: str = ""
    responses: list[ReviewResponse] = Field(default_factory=list)


class ReviewSummary(BaseModel):
    """The aggregate the gate's review thresholds apply to."""

    records: int
    reviewed_records: int = Field(description="records with at least one response")
    responses: int
    reviewers: int
    mean_rating: float | None = Field(description="over every response that rated")
    approval_rate: float | None = Field(description="approvals / responses that judged")
    agreement: float | None = Field(
        description="share of reviewer pairs on the same record giving the same approve/reject "
        "verdict, over all such pairs; None when no record has two verdicts"
    )
    mean_voice: float | None = Field(default=None, description="the candidate's, alone")
    mean_grounding: float | None = Field(default=None, description="the candidate's, alone")
    base_mean_rating: float | None = Field(
        default=None, description="the base answer's, as the lower of its two ratings"
    )


def _mean(values: list[int | None]) -> float | None:
    given = [value for value in values if value is not None]
    return fmean(given) if given else None


def lower_rating(*ratings: int | None) -> int | None:
    """The rating an answer gets overall: its weaker side's."""
    given = [rating for rating in ratings if rating is not None]
    return min(given) if given else None


def summarise(records: list[ReviewedRecord]) -> ReviewSummary:
    responses = [r for record in records for r in record.responses]
    verdicts = [r.approve for r in responses if r.approve is not None]
    pairs = [
        a == b
        for record in records
        for a, b in itertools.combinations(
            [r.approve for r in record.responses if r.approve is not None], 2
        )
    ]
    return ReviewSummary(
        records=len(records),
        reviewed_records=sum(1 for record in records if record.responses),
        responses=len(responses),
        reviewers=len({r.reviewer for r in responses}),
        mean_rating=_mean([r.rating for r in responses]),
        approval_rate=sum(verdicts) / len(verdicts) if verdicts else None,
        agreement=sum(pairs) / len(pairs) if pairs else None,
        mean_voice=_mean([r.voice for r in responses]),
        mean_grounding=_mean([r.grounding for r in responses]),
        base_mean_rating=_mean([lower_rating(r.base_voice, r.base_grounding) for r in responses]),
    )


class ReviewEvidence(BaseModel):
    """What the reviews of one version say, as the gate reads it."""

    backend: str
    human: bool = Field(description="False: nobody reviewed; review thresholds do not apply")
    model: str
    version: str
    records: list[ReviewedRecord] = Field(default_factory=list)
    notice: str | None = Field(default=None, description="shown wherever a decision is shown")
    collected_at: datetime = Field(default_factory=utc_now)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def summary(self) -> ReviewSummary:
        return summarise(self.records)


class ReviewBackend(Protocol):
    """Where reviews come from. ``request_review`` must be idempotent per version and
    sample id: the pipeline step that calls it may be retried."""

    name: str
    human: bool

    def request_review(self, model: ModelVersion, samples: list[ReviewSample]) -> ReviewRequest: ...

    def collect(self, model: ModelVersion) -> ReviewEvidence: ...


class AutoReviewBackend:
    """No reviewers: nothing is requested and the evidence says no human reviewed."""

    name = AUTO
    human = False

    def _announce(self, model: ModelVersion, action: str) -> None:
        log.warning(AUTO_NOTICE, extra={"model": f"{model.name}/{model.version}", "action": action})

    def request_review(self, model: ModelVersion, samples: list[ReviewSample]) -> ReviewRequest:
        self._announce(model, "request_review")
        return ReviewRequest(
            backend=self.name,
            model=model.name,
            version=model.version,
            human=False,
            samples=0,
            note=f"{AUTO_NOTICE}; {len(samples)} sample(s) were not sent anywhere",
        )

    def collect(self, model: ModelVersion) -> ReviewEvidence:
        self._announce(model, "collect")
        return ReviewEvidence(
            backend=self.name,
            human=False,
            model=model.name,
            version=model.version,
            notice=AUTO_NOTICE,
        )


BackendFactory = Callable[[TwinSettings], ReviewBackend]

BACKENDS: dict[str, BackendFactory] = {
    AUTO: lambda _settings: AutoReviewBackend(),
    "argilla": lambda settings: import_module(f"{__package__}.argilla_reviews").argilla_backend(
        settings
    ),
}


def review_backend(settings: TwinSettings, name: str | None = None) -> ReviewBackend:
    """The backend ``name`` (default: ``settings.gate.review_backend``)."""
    chosen = name or settings.gate.review_backend or AUTO
    factory = BACKENDS.get(chosen)
    if factory is None:
        known = ", ".join(sorted(BACKENDS))
        why = (
            " (the default when argilla.url is set)" if name is None and chosen == "argilla" else ""
        )
        raise UnknownReviewBackendError(
            f"review backend {chosen!r}{why} is not available in this installation (available: "
            f"{known}). Set TWIN_GATE__REVIEW_BACKEND=auto (or pass --review-backend auto) to "
            "decide on automatic metrics only, without human review"
        )
    return factory(settings)
