"""Crafted evidence for the gate: reviews with chosen responses, from a backend registered
by name exactly as a review service plugs in, and cheap registered versions on the
session's real MinIO (evaluations: ``tests/promotion/evaluations.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from twin_lib.promotion import reviews
from twin_lib.promotion.reviews import (
    ReviewedRecord,
    ReviewEvidence,
    ReviewRequest,
    ReviewResponse,
    ReviewSample,
)
from twin_lib.registry.models import ModelStatus, ModelVersion
from twin_lib.registry.store import ModelRegistry
from twin_lib.settings import RegistrySettings, TwinSettings

CRAFTED = "crafted"


@dataclass
class CraftedReviews:
    """A review backend whose reviewers' responses the test writes."""

    responses: dict[str, list[ReviewResponse]] = field(default_factory=dict)
    requested: list[tuple[str, list[ReviewSample]]] = field(default_factory=list)
    name: str = CRAFTED
    human: bool = True

    def request_review(self, model: ModelVersion, samples: list[ReviewSample]) -> ReviewRequest:
        self.requested.append((model.version, samples))
        for sample in samples:
            self.responses.setdefault(sample.sample_id, [])
        return ReviewRequest(
            backend=self.name,
            model=model.name,
            version=model.version,
            human=True,
            samples=len(samples),
            location=f"crafted://{model.name}/{model.version}",
            note="crafted reviews",
        )

    def collect(self, model: ModelVersion) -> ReviewEvidence:
        return ReviewEvidence(
            backend=self.name,
            human=True,
            model=model.name,
            version=model.version,
            records=[
                ReviewedRecord(sample_id=sample_id, responses=list(found))
                for sample_id, found in self.responses.items()
            ],
        )

    def respond(self, *ratings: tuple[str, int, bool]) -> None:
        """One response per (reviewer, rating, approve), each on its own record."""
        for number, (reviewer, rating, approve) in enumerate(ratings):
            self.responses.setdefault(f"r{number}", []).append(
                ReviewResponse(reviewer=reviewer, rating=rating, approve=approve)
            )


@pytest.fixture
def crafted_reviews(monkeypatch: pytest.MonkeyPatch) -> Iterator[CraftedReviews]:
    backend = CraftedReviews()
    monkeypatch.setitem(reviews.BACKENDS, CRAFTED, lambda _settings: backend)
    yield backend


@pytest.fixture
def gate_settings(stack_settings: TwinSettings) -> TwinSettings:
    """The session stack with a model name no other test uses, decided on automatic metrics."""
    name = f"twin-{uuid.uuid4().hex[:8]}"
    return stack_settings.model_copy(
        update={
            "registry": RegistrySettings(default_model=name),
            "gate": stack_settings.gate.model_copy(update={"review_backend": "auto"}),
        }
    )


@pytest.fixture
def registry(gate_settings: TwinSettings) -> ModelRegistry:
    return ModelRegistry(gate_settings.minio, gate_settings.registry)


def register(registry: ModelRegistry, name: str, *statuses: ModelStatus) -> ModelVersion:
    """A cheap registered version (no weights), moved through ``statuses``."""
    reservation = registry.reserve(name, by="test")
    model = registry.register_candidate(
        name,
        reservation.output_uri,
        hyperparameters={},
        base_model="s3://twin-models/base/tiny/",
        dataset_snapshots={},
        metrics={},
        by="test",
    )
    for status in statuses:
        model = registry.transition(name, model.version, status, by="test", reason="set up")
    return model
