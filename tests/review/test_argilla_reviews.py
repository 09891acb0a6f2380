"""Human review against a real Argilla 2.8 (server, worker, OpenSearch, Redis): samples
pushed per candidate, annotated by reviewers with the annotator role through the REST API
as the UI does it, collected, and decided on by the gate."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import argilla as rg
import httpx
import pytest
from pydantic import SecretStr

from tests.promotion.test_decision import good
from tests.support.argilla import api_key_of, submit
from tests.support.registry_data import model_version
from twin_lib.promotion.argilla_reviews import (
    ArgillaReviewBackend,
    ArgillaReviewError,
    candidate_position,
    dataset_name,
)
from twin_lib.promotion.decision import (
    Outcome,
    decide,
)
from twin_lib.promotion.reviews import ReviewSample, review_backend
from twin_lib.registry.models import ModelStatus, ModelVersion
from twin_lib.settings import GateSettings, TwinSettings
from twin_lib.stack import ARGILLA_SERVICES, LocalStack

FIGURES = good()


def candidate(tag: str) -> ModelVersion:
    """A version no other test pushes, so counts are this test's own."""
    return model_version(f"v{uuid.uuid4().hex[:8]}", ModelStatus.CANDIDATE, name=f"twin-{tag}")


def samples(model: ModelVersion, count: int) -> list[ReviewSample]:
    return [
        ReviewSample(
            sample_id=f"{model.version}-{index}",
            question=f"What did the author write about topic {index}?",
            answer=f"The candidate's answer {index}, in the author's words about the topic.",
            base_answer=f"The base model's answer {index}.",
            reference=f"The author's own words about topic {index}.",
            sources=[f"https://example.org/post/{index}"],
        )
        for index in range(count)
    ]


def owner_records(settings: TwinSettings, model: ModelVersion) -> list[rg.Record]:
    argilla = settings.argilla
    client = rg.Argilla(api_url=argilla.url, api_key=argilla.api_key.get_secret_value())
    dataset = client.datasets(name=dataset_name(model), workspace=argilla.workspace)
    assert dataset is not None
    return list(dataset.records(with_suggestions=True, with_responses=True))


def answers(position: str, *, candidate: tuple[int, str], base: tuple[int, str]) -> dict[str, Any]:
    """Values for every question: the candidate's answer gets ``candidate`` (rating,
    verdict), the other answer ``base``."""
    values: dict[str, Any] = {}
    for where in ("a", "b"):
        rating, verdict = candidate if where == position else base
        values |= {f"voice_{where}": rating, f"grounding_{where}": rating}
        values[f"verdict_{where}"] = verdict
    return values


def test_reviews_approve_one_candidate_and_reject_another(
    argilla_stack: TwinSettings, reviewers: list[str]
) -> None:
    backend = review_backend(argilla_stack, "argilla")
    assert isinstance(backend, ArgillaReviewBackend)
    gate = GateSettings(min_responses=4)
    good, bad = candidate("good"), candidate("bad")
    decisions = {}
    for model, verdict, rating in ((good, "approve", 5), (bad, "reject", 2)):
        request = backend.request_review(model, samples(model, 2))
        assert request.human and request.samples == 2
        assert request.location and request.location.startswith(argilla_stack.argilla.url)
        records = owner_records(argilla_stack, model)
        assert {r.id for r in records} == {f"{model.version}-0", f"{model.version}-1"}
        # Nothing submitted yet: every record pending, the gate waits.
        assert backend.progress(model).pending == 2
        assert decide(model.name, model.version, FIGURES, backend.collect(model), gate).outcome == (
            Outcome.WAIT
        )
        for record in records:
            position = record.metadata["candidate_position"]
            assert position == candidate_position(argilla_stack.argilla.review_seed, record.id)
            # The base answer is rated the opposite way: evidence must follow the position.
            opposite = ("reject", 1) if verdict == "approve" else ("approve", 5)
            values = answers(position, candidate=(rating, verdict), base=opposite[::-1])
            for key in reviewers:
                submit(argilla_stack.argilla.url, key, str(record._server_id), values)
        decisions[model.version] = decide(
            model.name, model.version, FIGURES, backend.collect(model), gate
        )
        progress = backend.progress(model)
        assert (progress.total, progress.completed, progress.pending) == (2, 2, 0)
    approved, rejected = decisions[good.version], decisions[bad.version]
    assert approved.outcome == Outcome.APPROVE, approved.reason
    assert approved.reviews.responses == 4 and approved.reviews.reviewers == 2
    assert approved.reviews.mean_rating == 5 and approved.reviews.approval_rate == 1
    assert approved.reviews.agreement == 1
    assert rejected.outcome == Outcome.REJECT, rejected.reason
    assert rejected.reviews.approval_rate == 0 and rejected.reviews.mean_rating == 2


def test_drafts_do_not_count_and_suggestions_come_from_the_reference(
    argilla_stack: TwinSettings, reviewers: list[str]
) -> None:
    backend = ArgillaReviewBackend(argilla_stack.argilla)
    model = candidate("draft")
    backend.request_review(model, samples(model, 1))
    (record,) = owner_records(argilla_stack, model)
    suggested = {s.question_name: s for s in record.suggestions}
    assert set(suggested) == {"voice_a", "voice_b"}
    assert all(s.agent == "reference-word-overlap" for s in suggested.values())
    position = record.metadata["candidate_position"]
    values = answers(position, candidate=(4, "approve"), base=(2, "reject"))
    submit(argilla_stack.argilla.url, reviewers[0], str(record._server_id), values, "draft")
    evidence = backend.collect(model)
    assert [r.responses for r in evidence.records] == [[]]
    submit(argilla_stack.argilla.url, reviewers[1], str(record._server_id), values)
    (reviewed,) = backend.collect(model).records
    assert [(r.reviewer, r.rating, r.approve) for r in reviewed.responses] == [
        ("reviewer-bo", 4, True)
    ]
    assert backend.progress(model).pending == 1


def test_pushing_twice_adds_nothing_and_keeps_responses(
    argilla_stack: TwinSettings, reviewers: list[str]
) -> None:
    backend = ArgillaReviewBackend(argilla_stack.argilla)
    model = candidate("twice")
    backend.request_review(model, samples(model, 3))
    first = owner_records(argilla_stack, model)[0]
    values = answers(
        first.metadata["candidate_position"], candidate=(3, "approve"), base=(3, "reject")
    )
    submit(argilla_stack.argilla.url, reviewers[0], str(first._server_id), values)
    again = backend.request_review(model, samples(model, 3))
    assert "0 record(s) added, 3 already there" in again.note
    records = owner_records(argilla_stack, model)
    assert len(records) == 3
    assert backend.collect(model).summary.responses == 1


def test_unknown_dataset_and_revoked_key_give_clear_errors(argilla_stack: TwinSettings) -> None:
    argilla = argilla_stack.argilla
    model = candidate("never-pushed")
    backend = ArgillaReviewBackend(argilla)
    with pytest.raises(ArgillaReviewError, match=f"no dataset '{dataset_name(model)}'"):
        backend.collect(model)
    elsewhere = ArgillaReviewBackend(argilla.model_copy(update={"workspace": "no-such-space"}))
    with pytest.raises(ArgillaReviewError, match="in workspace 'no-such-space'"):
        elsewhere.progress(model)
    client = rg.Argilla(api_url=argilla.url, api_key=argilla.api_key.get_secret_value())
    name = f"admin-{uuid.uuid4().hex[:6]}"
    admin = rg.User(username=name, password=f"{name}-password", role="admin", client=client)
    admin.create()
    key = SecretStr(api_key_of(argilla.url, name, f"{name}-password"))
    revoked = ArgillaReviewBackend(argilla.model_copy(update={"api_key": key}))
    admin.delete()
    with pytest.raises(ArgillaReviewError, match="refused the API key") as refused:
        revoked.request_review(model, samples(model, 1))
    assert argilla.url in str(refused.value) and "TWIN_ARGILLA__API_KEY" in str(refused.value)


class StopAfterFirstBatch(logging.Handler):
    """Stops a service of the stack (by PID) as soon as the first batch has been sent."""

    def __init__(self, stack: LocalStack, service: str) -> None:
        super().__init__()
        self.stack, self.service = stack, service

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "review records sent" and self.stack.running(self.service):
            self.stack.down([self.service])


def interrupted_push(
    settings: TwinSettings, service: str, caplog: pytest.LogCaptureFixture
) -> tuple[ModelVersion, ArgillaReviewBackend, str]:
    """A push of 10 samples in batches of 4 with ``service`` stopped after the first; the
    error it raised, and the stack brought back up."""
    stack = LocalStack(settings)
    model = candidate(f"without-{service}")
    backend = ArgillaReviewBackend(settings.argilla, batch=4)
    logger = logging.getLogger("twin_lib.promotion.argilla_reviews")
    stopper = StopAfterFirstBatch(stack, service)
    caplog.set_level(logging.INFO, logger=logger.name)
    logger.addHandler(stopper)
    try:
        with pytest.raises(ArgillaReviewError) as failed:
            backend.request_review(model, samples(model, 10))
    finally:
        logger.removeHandler(stopper)
    stack.up(ARGILLA_SERVICES)
    return model, backend, str(failed.value)


def test_server_stopped_mid_push_then_a_rerun_completes_it(
    argilla_stack: TwinSettings, caplog: pytest.LogCaptureFixture
) -> None:
    model, backend, error = interrupted_push(argilla_stack, "argilla", caplog)
    assert f"Argilla at {argilla_stack.argilla.url} is not reachable" in error
    assert "re-run" in error
    assert len(owner_records(argilla_stack, model)) == 4
    request = backend.request_review(model, samples(model, 10))
    assert "6 record(s) added, 4 already there" in request.note
    assert sorted(r.id for r in owner_records(argilla_stack, model)) == sorted(
        s.sample_id for s in samples(model, 10)
    )
    assert backend.progress(model).total == 10


def test_search_engine_stopped_mid_push_then_a_rerun_makes_every_record_reviewable(
    argilla_stack: TwinSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """A batch refused while OpenSearch is down is stored by Argilla but not indexed: it
    looks present, yet reviewers (whose queue is a search) would never see it."""
    model, backend, error = interrupted_push(argilla_stack, "opensearch", caplog)
    assert f"Argilla at {argilla_stack.argilla.url} failed while pushing" in error
    assert "re-run" in error
    backend.request_review(model, samples(model, 10))
    assert backend.progress(model).total == 10
    assert len(owner_records(argilla_stack, model)) == 10


def test_a_dataset_left_unpublished_by_an_interrupted_creation_is_made_again(
    argilla_stack: TwinSettings,
) -> None:
    """Creating a dataset is several requests (create, fields, questions, publish); one
    interrupted after the first leaves an empty draft that a re-run must not trip over."""
    argilla = argilla_stack.argilla
    model = candidate("draft-dataset")
    headers = {"X-Argilla-Api-Key": argilla.api_key.get_secret_value()}
    client = rg.Argilla(api_url=argilla.url, api_key=argilla.api_key.get_secret_value())
    workspace = client.workspaces(argilla.workspace)
    assert workspace is not None
    draft = httpx.post(
        f"{argilla.url}/api/v1/datasets",
        headers=headers,
        json={"name": dataset_name(model), "workspace_id": str(workspace.id)},
        timeout=30,
    )
    assert draft.status_code == 201 and draft.json()["status"] == "draft"
    ArgillaReviewBackend(argilla).request_review(model, samples(model, 2))
    assert len(owner_records(argilla_stack, model)) == 2
