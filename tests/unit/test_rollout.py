"""The rollout's pure parts: the InferenceService and its patches as KServe's own validation
(a webhook no plain API server runs) wants them, readiness read from the status, the
registry's lifecycle, and the deploy component as a cluster task.

No ``from __future__ import annotations``: KFP reads the test pipeline's real annotations.
"""

from pathlib import Path

import pytest
import yaml
from kfp import compiler, dsl

from components.serving import deploy_model
from pipelines.platform import STEP_PROFILES, for_cluster
from tests.support.pipeline_specs import tasks
from tests.support.registry_data import model_version
from twin_lib.k8s import inference_service as isvc_lib
from twin_lib.registry.models import IllegalTransitionError, ModelStatus
from twin_lib.settings import DeploymentSettings, KfpSettings


def test_service_is_standard_mode_and_resources_only_when_configured() -> None:
    body = isvc_lib.inference_service(DeploymentSettings(), "llm-twin", model_version())
    # KServe's validator accepts a canary only under exactly "Standard" (not "RawDeployment").
    assert body["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "Standard"}
    model = body["spec"]["predictor"]["model"]
    assert "resources" not in model, "unset resources must leave the runtime's (the overlay's)"
    assert model["name"] == "kserve-container"
    sized = isvc_lib.inference_service(
        DeploymentSettings(gpus=2, memory_limit="32Gi", node_selector={"pool": "gpu"}),
        "llm-twin",
        model_version(),
    )["spec"]["predictor"]
    assert sized["model"]["resources"] == {
        "requests": {"nvidia.com/gpu": "2"},
        "limits": {"memory": "32Gi", "nvidia.com/gpu": "2"},
    }
    assert sized["nodeSelector"] == {"pool": "gpu"}


def test_patches_test_what_they_expect_before_changing_anything() -> None:
    deployment = DeploymentSettings()
    canary = isvc_lib.canary_patch(deployment, "v0002", model_version(), 0)
    assert canary[0] == {"op": "test", "path": "/spec/predictor/name", "value": "v0002"}
    (added,) = canary[1]["value"]
    assert added["trafficPercent"] == 0
    # KServe refuses autoscaling fields on a canary (it runs fixed replicas).
    assert not {"minReplicas", "maxReplicas", "scaleTarget", "scaleMetric"} & set(
        added["predictor"]
    )
    promote = isvc_lib.promote_patch(deployment, model_version())
    assert [op["op"] for op in promote] == ["test", "replace", "remove"]
    assert promote[1]["value"]["name"] == "v0003"
    assert promote[1]["value"]["minReplicas"] == 1
    assert isvc_lib.remove_canary_patch("v0003")[0]["value"] == "v0003"


@pytest.mark.parametrize(
    ("status", "canary", "expected"),
    [
        ({"conditions": [{"type": "Ready", "status": "True"}]}, False, True),
        ({"conditions": [{"type": "Ready", "status": "False"}]}, False, False),
        # A canary is ready only by its own status, whatever the service's condition says.
        ({"conditions": [{"type": "Ready", "status": "True"}]}, True, False),
        (
            {
                "conditions": [{"type": "Ready", "status": "True"}],
                "canaryStatuses": [{"name": "v0003", "ready": False, "trafficPercent": 10}],
            },
            True,
            False,
        ),
        (
            {
                "conditions": [{"type": "Ready", "status": "True"}],
                "canaryStatuses": [{"name": "v0003", "ready": True, "trafficPercent": 10}],
            },
            True,
            True,
        ),
    ],
)
def test_readiness_of_a_version(status: dict, canary: bool, expected: bool) -> None:
    isvc = {"spec": {"predictor": {"name": "v0003" if not canary else "v0002"}}, "status": status}
    ready, summary = isvc_lib.readiness(isvc, "v0003", canary=canary)
    assert ready is expected
    assert "Ready=" in summary


def test_a_deployed_version_may_return_to_approved_and_then_be_deployed_again() -> None:
    model = model_version(status=ModelStatus.DEPLOYED)
    back = model.changed(ModelStatus.APPROVED, by="deployer", reason="superseded by v0004")
    assert back.changed(ModelStatus.DEPLOYED, by="rollback", reason="restored").was_deployed()
    with pytest.raises(IllegalTransitionError):
        model.changed(ModelStatus.CANDIDATE, by="x", reason="y")


def test_deploy_component_runs_uncached_and_unretried_with_the_platform_env(
    tmp_path: Path,
) -> None:
    @dsl.pipeline(name="deploy-only")
    def pipeline(version: str) -> None:
        for_cluster(
            deploy_model(version=version),
            kfp_settings=KfpSettings(components_image="registry.example/twin:1"),
        )

    output = tmp_path / "deploy.yaml"
    compiler.Compiler().compile(pipeline, str(output))
    spec, *platform = yaml.safe_load_all(output.read_text())
    (task,) = tasks(spec, platform[0] if platform else None)
    assert task.name == "deploy-model"
    assert task.image == "registry.example/twin:1"
    assert not task.cached
    assert task.retry is None
    assert "TWIN_MINIO__ACCESS_KEY" in task.secret_env["twin-credentials"]
    assert "TWIN_KUBERNETES__NAMESPACE" in task.config_map_env["twin-endpoints"]
    assert STEP_PROFILES["deploy-model"].side_effects
