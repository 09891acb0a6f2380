"""The local deploy target: ``deploy_version`` with ``serving.deployment.target: local``
restarts this machine's real model server on the version, asks it the smoke question over
REST and keeps the registry's rules; a version that fails to serve gives the machine back
to the version that served before.

One sequence per module (three real server starts and one that fails): a first version,
a second replacing it, a third whose weights are corrupt, and a candidate that is refused.
The versions share the served setup's tiny weights and lineage under a model name of
their own, so other serving tests see none of them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.promotion.evaluations import crafted_evaluation, store_evaluation
from tests.support.isolated import free_port
from tests.support.serving_data import ServedSetup, register_model
from twin_lib.cli import app
from twin_lib.registry.models import DeploymentAction, ModelStatus, ModelVersion
from twin_lib.registry.store import ModelRegistry
from twin_lib.serving.client import TwinClient
from twin_lib.settings import TwinSettings, to_env
from twin_lib.stack.model_server import LocalModelServer, ModelServerRecord
from twin_lib.steps.deploy import (
    DeploymentError,
    DeploymentResult,
    NotDeployableError,
    deploy_version,
    rollback,
)

pytestmark = pytest.mark.integration

NAME = "twin-local-deploy"


@dataclass
class Rollouts:
    settings: TwinSettings
    registry: ModelRegistry
    first: ModelVersion
    second: ModelVersion
    broken: ModelVersion
    candidate: ModelVersion
    created: DeploymentResult
    promoted: DeploymentResult
    after_promote: ModelServerRecord | None
    failure: str
    after_failure: ModelServerRecord | None
    refusal: str
    after_refusal: ModelServerRecord | None
    weights: Path
    lineage: dict[str, str]


def speaking_copy(weights: Path, folder: Path) -> Path:
    """The untrained tiny model answers greedily with blank lines, which the smoke check
    rightly refuses. In this copy the word " the" takes the newline's output row (scaled up)
    and the newline's row is zeroed, so its greedy answer is " the the ..." (weights whose
    answer is known)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shutil.copytree(weights, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    word = tokenizer.encode(" the", add_special_tokens=False)[-1]
    newline = tokenizer.encode("\n", add_special_tokens=False)[-1]
    with torch.no_grad():
        rows = model.get_output_embeddings().weight
        rows[word] = rows[newline] * 10
        rows[newline] = 0
    model.save_pretrained(folder)
    return folder


def corrupt_copy(weights: Path, folder: Path) -> Path:
    """The weights with every tensor file overwritten: resolvable, but no server loads it."""
    shutil.copytree(weights, folder)
    tensors = list(folder.glob("*.safetensors")) + list(folder.glob("*.bin"))
    assert tensors, f"no weight files in {weights}"
    for tensor in tensors:
        tensor.write_bytes(b"not a tensor file" * 64)
    return folder


def failure_of(settings: TwinSettings, version: str, expected: type[Exception]) -> str:
    with pytest.raises(expected) as raised:
        deploy_version(settings, version, by="tests")
    return str(raised.value)


@pytest.fixture(scope="module")
def rollouts(
    served_setup: ServedSetup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Rollouts]:
    workdir = tmp_path_factory.mktemp("local-deploy")
    settings = served_setup.settings.model_copy(deep=True)
    settings.serving.model_name = NAME
    settings.serving.version = None
    settings.serving.http_port = free_port()
    settings.serving.deployment.target = "local"
    settings.gate.review_backend = "auto"
    settings.stack.state_dir = workdir / "state"
    registry = ModelRegistry(settings.minio, settings.registry)
    lineage = registry.get(served_setup.model.name, served_setup.model.version).dataset_snapshots
    weights = speaking_copy(served_setup.base_model, workdir / "speaking")
    first = register_model(settings, NAME, weights, lineage)
    second = register_model(settings, NAME, weights, lineage)
    broken = register_model(settings, NAME, corrupt_copy(weights, workdir / "broken"), lineage)
    candidate = register_model(settings, NAME, weights, lineage, statuses=())
    server = LocalModelServer(settings)
    try:
        created = deploy_version(settings, first.version, by="tests")
        promoted = deploy_version(settings, second.version, by="tests")
        after_promote = server.running()
        failure = failure_of(settings, broken.version, DeploymentError)
        after_failure = server.running()
        refusal = failure_of(settings, candidate.version, NotDeployableError)
        yield Rollouts(
            settings=settings,
            registry=registry,
            first=first,
            second=second,
            broken=broken,
            candidate=candidate,
            created=created,
            promoted=promoted,
            after_promote=after_promote,
            failure=failure,
            after_failure=after_failure,
            refusal=refusal,
            after_refusal=server.running(),
            weights=weights,
            lineage=lineage,
        )
    finally:
        server.down()


def status(rollouts: Rollouts, model: ModelVersion) -> ModelStatus:
    return rollouts.registry.get(NAME, model.version).status


def actions(rollouts: Rollouts, model: ModelVersion) -> list[DeploymentAction]:
    return [event.action for event in rollouts.registry.get(NAME, model.version).deployments]


def test_first_version_starts_the_server_and_answers(rollouts: Rollouts):
    created = rollouts.created
    assert created.action == DeploymentAction.CREATED
    assert created.previous is None
    assert created.answer is not None and "the" in created.answer
    assert created.endpoint == LocalModelServer(rollouts.settings).url()
    assert "local model server" in created.markdown()


def test_next_version_replaces_it_and_keeps_the_old_one_for_rollback(rollouts: Rollouts):
    promoted = rollouts.promoted
    assert promoted.action == DeploymentAction.PROMOTED
    assert promoted.previous == rollouts.first.version
    assert rollouts.after_promote is not None
    assert rollouts.after_promote.model == f"{NAME}/{rollouts.second.version}"
    first = rollouts.registry.get(NAME, rollouts.first.version)
    assert first.status == ModelStatus.APPROVED
    assert "kept for rollback" in first.history[-1].reason
    assert first.was_deployed()
    assert actions(rollouts, rollouts.first) == [DeploymentAction.CREATED]
    assert actions(rollouts, rollouts.second) == [DeploymentAction.PROMOTED]


def test_a_version_that_does_not_serve_gives_the_machine_back(rollouts: Rollouts):
    assert rollouts.broken.version in rollouts.failure
    assert f"{NAME}/{rollouts.second.version} serves again" in rollouts.failure
    restored = rollouts.after_failure
    assert restored is not None
    assert restored.model == f"{NAME}/{rollouts.second.version}"
    assert rollouts.after_promote is not None and restored.pid != rollouts.after_promote.pid
    assert status(rollouts, rollouts.broken) == ModelStatus.APPROVED
    assert status(rollouts, rollouts.second) == ModelStatus.DEPLOYED
    assert actions(rollouts, rollouts.broken) == [DeploymentAction.FAILED]
    with TwinClient(restored.url, model=restored.served_name) as client:
        answer = client.ask("What do you write about?", max_tokens=8)
    assert answer.text.strip()
    assert answer.model_version in (None, restored.model)


def test_a_candidate_is_refused_without_touching_the_server(rollouts: Rollouts):
    assert "only an approved version is deployed" in rollouts.refusal
    assert status(rollouts, rollouts.candidate) == ModelStatus.CANDIDATE
    assert actions(rollouts, rollouts.candidate) == []
    assert rollouts.after_refusal == rollouts.after_failure


def test_cluster_rollback_is_refused_for_the_local_target(rollouts: Rollouts):
    with pytest.raises(DeploymentError, match="twin deploy VERSION"):
        rollback(rollouts.settings, by="tests")


def promote_locally(rollouts: Rollouts, version: str, tmp_path: Path) -> Result:
    """``twin pipeline run promote --local`` on ``version``, deploying to the local server."""
    params = {"version": version, "review_backend": "auto", "deploy_target": "local"}
    arguments = ["pipeline", "run", "promote", "--local", "--pipeline-root", str(tmp_path)]
    arguments += [f"--param={key}={value}" for key, value in params.items()]
    return CliRunner().invoke(app, arguments)


def test_promote_pipeline_refuses_a_rejected_candidate_and_deploys_an_approved_one(
    rollouts: Rollouts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """``twin pipeline run promote --local`` with the auto backend and the local target.
    Runs last in this module: it replaces what the local server serves."""
    for key, value in to_env(rollouts.settings).items():
        monkeypatch.setenv(key, value)  # the CLI exports these for its KFP tasks
    monkeypatch.delenv("TWIN_SERVING__VERSION", raising=False)
    weaker = register_model(rollouts.settings, NAME, rollouts.weights, rollouts.lineage, ())
    store_evaluation(rollouts.registry, crafted_evaluation(weaker, perplexity=(30.0, 12.0)))
    stronger = register_model(rollouts.settings, NAME, rollouts.weights, rollouts.lineage, ())
    store_evaluation(rollouts.registry, crafted_evaluation(stronger))
    serving_before = LocalModelServer(rollouts.settings).running()

    rejected = promote_locally(rollouts, weaker.version, tmp_path / "rejected")
    assert rejected.exit_code == 0, rejected.output
    assert status(rollouts, weaker) == ModelStatus.REJECTED
    assert actions(rollouts, weaker) == []
    assert LocalModelServer(rollouts.settings).running() == serving_before

    approved = promote_locally(rollouts, stronger.version, tmp_path / "approved")
    assert approved.exit_code == 0, approved.output
    assert status(rollouts, stronger) == ModelStatus.DEPLOYED
    assert actions(rollouts, stronger) == [DeploymentAction.PROMOTED]
    assert status(rollouts, rollouts.second) == ModelStatus.APPROVED
    serving = LocalModelServer(rollouts.settings).running()
    assert serving is not None and serving.model == f"{NAME}/{stronger.version}"
