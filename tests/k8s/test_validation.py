"""Every kustomization renders, validates strictly and passes the policy checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.k8s.conftest import MANIFESTS, OVERLAYS, RUNS
from twin_lib.cli import app
from twin_lib.k8s import validate

TARGETS = OVERLAYS + RUNS


@pytest.mark.parametrize("target", TARGETS)
def test_schemas_strict(target: str, rendered: dict[str, str], tools_cache: Path) -> None:
    assert validate.kubeconform(rendered[target], tools_cache) == []


@pytest.mark.parametrize("target", TARGETS)
def test_kube_score_has_no_unexplained_findings(
    target: str, rendered: dict[str, str], tools_cache: Path
) -> None:
    context = rendered[validate.RUN_CONTEXT] + "\n---\n" if target in RUNS else ""
    assert validate.kube_score(context + rendered[target], tools_cache) == []


@pytest.mark.parametrize("target", OVERLAYS)
def test_overlay_contains_every_part(target: str, rendered: dict[str, str]) -> None:
    kinds = {doc["kind"] for doc in validate.documents(rendered[target])}
    assert {
        "Namespace",
        "StatefulSet",
        "Deployment",
        "NetworkPolicy",
        "Role",
        "RoleBinding",
        "ServingRuntime",
        "PyTorchJob",
    } <= kinds


def test_strict_validation_catches_typos(rendered: dict[str, str], tools_cache: Path) -> None:
    broken = (
        rendered["overlays/dev"]
        .replace("supportedModelFormats:", "supportedModelFormat:")
        .replace("nprocPerNode:", "nprocsPerNode:")
        .replace("serviceName: twin-minio", "serviceNam: twin-minio")
    )
    objects = {finding.obj for finding in validate.kubeconform(broken, tools_cache)}
    assert objects == {
        "PyTorchJob/twin-sft-defaults",
        "ServingRuntime/twin-predictor",
        "StatefulSet/twin-minio",
    }


def test_silenced_check_needs_a_reason(rendered: dict[str, str], tools_cache: Path) -> None:
    unexplained = rendered["overlays/dev"].replace(validate.KUBE_SCORE_REASON, "note")
    findings = validate.kube_score(unexplained, tools_cache)
    assert findings
    assert all("without a reason" in f.message for f in findings)


def test_cli_validates_the_whole_tree(tools_cache: Path) -> None:
    result = CliRunner().invoke(app, ["manifests", "validate", "--manifests", str(MANIFESTS)])
    assert result.exit_code == 0, result.output
    assert "no policy findings" in result.output


def test_pod_security_restricted_everywhere(rendered: dict[str, str]) -> None:
    namespaces = [
        doc for doc in validate.documents(rendered["overlays/dev"]) if doc["kind"] == "Namespace"
    ]
    assert [
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] for ns in namespaces
    ] == ["restricted"]
