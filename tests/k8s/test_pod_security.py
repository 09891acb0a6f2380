"""Every pod the manifests create passes Pod Security "restricted", judged by the admission
plugin's own library; the negative cases prove the check looks at each kind of workload."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.k8s.conftest import OVERLAYS, RUNS
from tests.support.registry_data import model_version
from twin_lib.k8s import validate
from twin_lib.k8s.inference_service import inference_service
from twin_lib.settings import DeploymentSettings

TARGETS = OVERLAYS + RUNS
# Kinds the manifests use whose pods the namespace's admission would judge.
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob", "PyTorchJob", "InferenceService")

BAD_DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "bad"},
    "spec": {
        "selector": {"matchLabels": {"app": "bad"}},
        "template": {
            "metadata": {"labels": {"app": "bad"}},
            "spec": {
                "containers": [
                    {"name": "main", "image": "busybox", "securityContext": {"privileged": True}}
                ]
            },
        },
    },
}


def _checked_objects(checked: list[str]) -> set[str]:
    """``Kind/name/part`` names pods of a PyTorchJob role or an InferenceService component."""
    return {"/".join(name.split("/")[:2]) for name in checked}


@pytest.mark.parametrize("target", TARGETS)
def test_every_pod_is_restricted(target: str, rendered: dict[str, str], tools_cache: Path) -> None:
    report = validate.pod_security(rendered[target], tools_cache)
    assert report.findings == []
    workloads = {
        f"{doc['kind']}/{doc['metadata']['name']}"
        for doc in validate.documents(rendered[target])
        if doc["kind"] in WORKLOAD_KINDS
    }
    assert workloads
    assert workloads <= _checked_objects(report.checked)


def test_privileged_deployment_is_reported(tools_cache: Path) -> None:
    findings = validate.pod_security(yaml.safe_dump(BAD_DEPLOYMENT), tools_cache).findings
    assert {f.obj for f in findings} == {"Deployment/bad"}
    checks = {f.message.split(":")[0] for f in findings}
    assert {"privileged", "seccompProfile", "runAsNonRoot != true"} <= checks


def test_each_workload_kind_is_evaluated(rendered: dict[str, str], tools_cache: Path) -> None:
    escalating = rendered["overlays/gpu"].replace(
        "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true"
    )
    report = validate.pod_security(escalating, tools_cache)
    assert {f.obj for f in report.findings} == set(report.checked)


def test_inference_service_is_judged_with_its_runtime_container(
    rendered: dict[str, str], tools_cache: Path
) -> None:
    """The InferenceService the deployer creates (``twin deploy``) gets its container's
    securityContext from the ServingRuntime: with the runtime its predictor pod is
    restricted, without it the pod KServe would create is not."""
    service = inference_service(DeploymentSettings(), "llm-twin", model_version())
    runtimes = [
        doc
        for doc in validate.documents(rendered["overlays/dev"])
        if doc["kind"] == "ServingRuntime"
    ]
    judged = validate.pod_security(yaml.safe_dump_all([*runtimes, service]), tools_cache)
    assert judged.findings == []
    assert "InferenceService/twin/predictor" in judged.checked
    findings = validate.pod_security(yaml.safe_dump(service), tools_cache).findings
    assert {f.obj for f in findings} == {"InferenceService/twin/predictor"}
