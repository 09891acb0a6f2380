"""`twin promote` with the Argilla backend, the registry on the session's MinIO behind it:
a candidate waits while too few reviewers have submitted, is approved once enough have, and
every reviewer's separate ratings and comment are stored with the version."""

from __future__ import annotations

import uuid
from pathlib import Path

import argilla as rg
import pytest
from typer.testing import CliRunner

from tests.promotion.conftest import register
from tests.promotion.evaluations import crafted_evaluation, store_evaluation
from tests.support.argilla import submit
from twin_lib.cli import app
from twin_lib.promotion.argilla_reviews import dataset_name
from twin_lib.promotion.reviews import ReviewEvidence
from twin_lib.registry.models import ModelStatus, ModelVersion
from twin_lib.registry.store import ModelRegistry, split_s3_uri
from twin_lib.settings import KubernetesSettings, RegistrySettings, TwinSettings, to_env
from twin_lib.steps.promotion import REVIEWS_FILE, request_review

pytestmark = pytest.mark.integration


@pytest.fixture
def gate_settings(
    stack_settings: TwinSettings, argilla_stack: TwinSettings, tmp_path: Path
) -> TwinSettings:
    """The session's MinIO registry (a model name of its own) and Argilla; four responses
    decide. No cluster: the kubeconfig named does not exist, so deploying fails at once
    (deployment itself is tested in tests/promotion and tests/k8s)."""
    return stack_settings.model_copy(
        update={
            "registry": RegistrySettings(default_model=f"twin-{uuid.uuid4().hex[:8]}"),
            "argilla": argilla_stack.argilla,
            "gate": stack_settings.gate.model_copy(
                update={"review_backend": "argilla", "min_responses": 4}
            ),
            "kubernetes": KubernetesSettings(kubeconfig=tmp_path / "no-cluster"),
        }
    )


def _twin(settings: TwinSettings, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=to_env(settings))
    return result.exit_code, result.output


def _records(settings: TwinSettings, model: ModelVersion) -> list[rg.Record]:
    argilla = settings.argilla
    client = rg.Argilla(api_url=argilla.url, api_key=argilla.api_key.get_secret_value())
    dataset = client.datasets(name=dataset_name(model), workspace=argilla.workspace)
    assert dataset is not None
    return list(dataset.records())


def _review(settings: TwinSettings, key: str, record: rg.Record, comment: str) -> None:
    """Candidate: voice 5, grounding 4, approved; base: voice 2, grounding 1, rejected."""
    mine = record.metadata["candidate_position"]
    other = "b" if mine == "a" else "a"
    values = {
        f"voice_{mine}": 5,
        f"grounding_{mine}": 4,
        f"verdict_{mine}": "approve",
        f"voice_{other}": 2,
        f"grounding_{other}": 1,
        f"verdict_{other}": "reject",
        "comment": comment,
    }
    submit(settings.argilla.url, key, str(record._server_id), values)


def test_promote_waits_for_argilla_reviews_then_approves_and_stores_them(
    gate_settings: TwinSettings, reviewers: list[str]
) -> None:
    registry = ModelRegistry(gate_settings.minio, gate_settings.registry)
    name = gate_settings.registry.default_model
    candidate = register(registry, name)
    store_evaluation(registry, crafted_evaluation(candidate, samples=2))
    request = request_review(gate_settings)
    assert request.backend == "argilla" and request.samples == 2
    records = _records(gate_settings, candidate)

    for record in records:
        _review(gate_settings, reviewers[0], record, f"ana on {record.id}")
    code, output = _twin(gate_settings, "promote")
    assert code == 0, output
    assert f"{name} {candidate.version} waits for evidence" in output
    assert registry.get(name, candidate.version).status == ModelStatus.CANDIDATE

    for record in records:
        _review(gate_settings, reviewers[1], record, f"bo on {record.id}")
    code, output = _twin(gate_settings, "promote")
    assert code == 1, output  # approved and recorded; deploying needs the missing cluster
    assert "was approved (recorded in the registry) but not deployed" in output
    approved = registry.get(name, candidate.version)
    assert approved.status == ModelStatus.APPROVED
    assert "4 review response(s) via argilla" in approved.history[-1].reason

    stored = ReviewEvidence.model_validate(
        registry.store.get_json(
            *split_s3_uri(f"{registry.version_uri(name, candidate.version)}{REVIEWS_FILE}")
        )
    )
    responses = [(r.reviewer, r) for record in stored.records for r in record.responses]
    assert len(responses) == 4
    for reviewer, response in responses:
        assert (response.voice, response.grounding, response.rating) == (5, 4, 4)
        assert (response.base_voice, response.base_grounding) == (2, 1)
        assert (response.approve, response.base_approve) == (True, False)
        assert response.comment and response.comment.startswith(reviewer.removeprefix("reviewer-"))
    summary = stored.summary
    assert (summary.mean_rating, summary.mean_voice, summary.mean_grounding) == (4, 5, 4)
    assert summary.base_mean_rating == 1

    code, output = _twin(gate_settings, "reviews", "status", candidate.version)
    assert code == 0, output
    assert "reviews recorded with the decision" in output
    assert f"bo on {records[0].id}" in output and f"ana on {records[1].id}" in output
