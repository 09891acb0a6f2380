"""The gate's KFP components: as cluster tasks (caching, retries, the platform env) and run
for real through KFP local execution against the session's MinIO.

No ``from __future__ import annotations``: KFP reads the test pipeline's real annotations.
"""

from pathlib import Path

import pytest
import yaml
from kfp import compiler, dsl, local

from components.promotion import decide_promotion, request_review
from components.serving import deploy_model
from pipelines.platform import for_cluster
from tests.promotion.conftest import register
from tests.promotion.evaluations import crafted_evaluation, store_evaluation
from tests.support.pipeline_specs import tasks
from twin_lib.registry.models import ModelStatus
from twin_lib.registry.store import ModelRegistry
from twin_lib.settings import KfpSettings, TwinSettings, to_env
from twin_lib.steps.promotion import read_decision

KFP = KfpSettings(components_image="registry.example/twin:1")


@dsl.pipeline(name="gate")
def gate_pipeline(version: str = "") -> None:
    asked = for_cluster(request_review(version=version), kfp_settings=KFP)
    for_cluster(decide_promotion(version=version), kfp_settings=KFP).after(asked)


@dsl.pipeline(name="gate-then-deploy")
def gate_then_deploy(version: str = "") -> None:
    decided = for_cluster(decide_promotion(version=version), kfp_settings=KFP)
    with dsl.If(decided.outputs["outcome"] == "approve"):
        for_cluster(deploy_model(version=decided.outputs["version"]), kfp_settings=KFP)


def test_gate_tasks_carry_the_platform_env_and_only_the_request_is_retried(
    tmp_path: Path,
) -> None:
    output = tmp_path / "gate.yaml"
    compiler.Compiler().compile(gate_pipeline, str(output))
    spec, *platform = yaml.safe_load_all(output.read_text())
    found = {t.name: t for t in tasks(spec, platform[0] if platform else None)}
    review, decide = found["request-review"], found["decide-promotion"]
    assert review.image == decide.image == "registry.example/twin:1"
    assert not review.cached and not decide.cached
    assert review.retry is not None and decide.retry is None
    for task in (review, decide):
        assert "TWIN_ARGILLA__URL" in task.config_map_env["twin-endpoints"]
        assert "TWIN_MINIO__SECRET_KEY" in task.secret_env["twin-credentials"]


def test_deploy_runs_only_under_the_approve_outcome(tmp_path: Path) -> None:
    output = tmp_path / "gate-then-deploy.yaml"
    compiler.Compiler().compile(gate_then_deploy, str(output))
    spec = next(yaml.safe_load_all(output.read_text()))
    [condition] = [t for t in spec["root"]["dag"]["tasks"].values() if "triggerPolicy" in t]
    assert condition["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--decide-promotion-outcome'] == 'approve'"
    )
    assert "deploy-model" in spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]


@pytest.mark.integration
def test_decide_component_records_the_decision_and_says_none_when_nothing_waits(
    gate_settings: TwinSettings,
    registry: ModelRegistry,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for key, value in to_env(gate_settings).items():
        monkeypatch.setenv(key, value)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))
    name = gate_settings.registry.default_model
    candidate = register(registry, name)
    store_evaluation(registry, crafted_evaluation(candidate))

    decided = decide_promotion()

    assert decided.outputs["outcome"] == "approve"
    assert decided.outputs["version"] == candidate.version
    assert registry.get(name, candidate.version).status == ModelStatus.APPROVED
    recorded = read_decision(gate_settings, candidate.version)
    assert recorded is not None and recorded.by == "promote pipeline"
    summary = Path(decided.outputs["summary"].path).read_text()
    assert "NO HUMAN REVIEW" in summary
    assert decide_promotion().outputs["outcome"] == "none"
