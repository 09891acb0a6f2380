"""The rendered manifests against a real API server: kube-apiserver of Kubernetes v1.37.2
with etcd, the KServe and training-operator CRDs installed, RBAC and Pod Security admission on.

What schemas and libraries cannot show: that the server accepts every object as a whole
(defaulting, validation, CRD structural schemas with strict field validation), that Pod
Security admission has nothing to warn about in the namespace as labelled, that the RBAC
grants exactly what the pipeline runner needs, and that the status of a PyTorchJob can be
driven the way the training operator drives it.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from tests.k8s.conftest import OVERLAYS, RUNS
from tests.support import apiserver
from tests.support.apiserver import ApiServer, ApplyResult
from twin_lib.k8s import tools, validate

pytestmark = pytest.mark.apiserver

TARGETS = OVERLAYS + RUNS
PLATFORM_NAMESPACE = "llm-twin"
OTHER_NAMESPACE = "default"
RUNNER = f"{PLATFORM_NAMESPACE}/twin-pipeline-runner"
# Standalone KFP runs pipeline steps as this ServiceAccount; the RoleBinding names it too.
KFP_RUNNER = "kubeflow/pipeline-runner"
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding")
PYTORCHJOB = {"group": "kubeflow.org", "version": "v1", "plural": "pytorchjobs"}
LAUNCHED = (
    ("kubeflow.org", "pytorchjobs", ("create", "get", "list", "watch", "delete")),
    # The deployer patches the service to add, promote and remove canaries.
    (
        "serving.kserve.io",
        "inferenceservices",
        ("create", "get", "list", "watch", "patch", "delete"),
    ),
)

PRIVILEGED_CONTAINER = {
    "name": "main",
    "image": "busybox",
    "securityContext": {"privileged": True},
}
PRIVILEGED_DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "privileged", "namespace": PLATFORM_NAMESPACE},
    "spec": {
        "selector": {"matchLabels": {"app": "privileged"}},
        "template": {
            "metadata": {"labels": {"app": "privileged"}},
            "spec": {"containers": [PRIVILEGED_CONTAINER]},
        },
    },
}
PRIVILEGED_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "privileged", "namespace": PLATFORM_NAMESPACE},
    "spec": {"containers": [PRIVILEGED_CONTAINER]},
}


def _server_objects(rendered: str) -> list[dict[str, Any]]:
    """Every object but KFP's ``Pipeline``/``PipelineVersion``: their CRDs ship in a KFP Go
    module the module proxy does not serve, so this server cannot know them. They are
    checked against the pipeline IR instead (``validate.kfp_objects``)."""
    return [doc for doc in validate.documents(rendered) if doc["kind"] not in validate.KFP_KINDS]


def _rendered_pytorchjob(rendered: dict[str, str]) -> dict[str, Any]:
    (job,) = (
        doc for doc in validate.documents(rendered["overlays/dev"]) if doc["kind"] == "PyTorchJob"
    )
    return job


@pytest.fixture(scope="module")
def namespaces(api_server: ApiServer, rendered: dict[str, str]) -> list[str]:
    """Create, for real, the namespaces the objects live in, so namespaced objects (and Pod
    Security admission, which reads the namespace's labels) have a home."""
    docs = [doc for target in TARGETS for doc in validate.documents(rendered[target])]
    defined = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Namespace"}
    used = {doc["metadata"]["namespace"] for doc in docs if "namespace" in doc["metadata"]}
    # The KFP namespace is not the platform's to create: KFP's own install provides it.
    provided = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        for name in sorted(used - defined.keys())
    ]
    names = sorted(defined.keys() | used)
    # What the controller manager's ServiceAccount controller would add to each namespace;
    # ServiceAccount admission refuses a pod whose account does not exist.
    default_accounts = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": n},
        }
        for n in names
    ]
    result = apiserver.apply(api_server, yaml.safe_dump_all([*defined.values(), *provided]))
    assert result.returncode == 0, result.errors
    result = apiserver.apply(api_server, yaml.safe_dump_all(default_accounts))
    assert result.returncode == 0, result.errors
    return names


@pytest.fixture(scope="module")
def dry_runs(
    api_server: ApiServer, rendered: dict[str, str], namespaces: list[str]
) -> dict[str, ApplyResult]:
    return {
        target: apiserver.apply(
            api_server, yaml.safe_dump_all(_server_objects(rendered[target])), dry_run=True
        )
        for target in TARGETS
    }


@pytest.fixture(scope="module")
def rbac_applied(api_server: ApiServer, rendered: dict[str, str], namespaces: list[str]) -> None:
    """The overlay's ServiceAccounts, Role and RoleBinding, plus KFP's runner account."""
    docs = [
        doc for doc in validate.documents(rendered["overlays/dev"]) if doc["kind"] in RBAC_KINDS
    ]
    kfp_namespace, kfp_name = KFP_RUNNER.split("/")
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": kfp_name, "namespace": kfp_namespace},
        }
    )
    result = apiserver.apply(api_server, yaml.safe_dump_all(docs))
    assert result.returncode == 0, result.errors


def test_server_is_the_pinned_release(api_server: ApiServer) -> None:
    """The version stamped at build time is the one go.mod pins, staging modules included."""
    version = tools.KUBE_APISERVER_VERSION
    go_mod = (tools.KUBE_APISERVER_TESTENV.directory / "go.mod").read_text()
    assert f"\tk8s.io/kubernetes {version}\n" in go_mod
    staging = re.findall(r"^\tk8s\.io/(\S+) => k8s\.io/\1 (\S+)$", go_mod, re.MULTILINE)
    assert staging
    assert {pinned for _, pinned in staging} == {version.replace("v1.", "v0.", 1)}
    reported = json.loads(api_server.kubectl("version", "-o", "json").stdout)
    assert reported["serverVersion"]["gitVersion"] == version


@pytest.mark.parametrize("target", TARGETS)
def test_server_accepts_every_object(target: str, dry_runs: dict[str, ApplyResult]) -> None:
    result = dry_runs[target]
    assert result.returncode == 0, "\n".join(result.errors)
    assert result.errors == []


@pytest.mark.parametrize("target", TARGETS)
def test_every_object_was_sent(
    target: str, rendered: dict[str, str], dry_runs: dict[str, ApplyResult]
) -> None:
    """One "serverside-applied (server dry run)" line per object: nothing was left out."""
    expected = _server_objects(rendered[target])
    applied = dry_runs[target].applied
    assert len(applied) == len(expected)
    assert all(line.endswith("serverside-applied (server dry run)") for line in applied)


@pytest.mark.parametrize("target", TARGETS)
def test_no_pod_security_or_other_warnings(target: str, dry_runs: dict[str, ApplyResult]) -> None:
    assert dry_runs[target].warnings == []


def test_platform_namespace_enforces_restricted(
    api_server: ApiServer, namespaces: list[str]
) -> None:
    """The warnings above would come from these labels; without them the check is empty."""
    with api_server.api_client() as api:
        labels = k8s_client.CoreV1Api(api).read_namespace(PLATFORM_NAMESPACE).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


def test_privileged_deployment_is_warned(api_server: ApiServer, namespaces: list[str]) -> None:
    result = apiserver.apply(api_server, yaml.safe_dump(PRIVILEGED_DEPLOYMENT), dry_run=True)
    assert result.returncode == 0
    assert any(
        'would violate PodSecurity "restricted:latest"' in w and "privileged" in w
        for w in result.warnings
    ), result.warnings


def test_privileged_pod_is_refused(api_server: ApiServer, namespaces: list[str]) -> None:
    result = apiserver.apply(api_server, yaml.safe_dump(PRIVILEGED_POD), dry_run=True)
    assert result.returncode != 0
    assert any("violates PodSecurity" in e for e in result.errors), result.errors


def test_pytorchjob_with_unknown_field_is_refused(
    api_server: ApiServer, rendered: dict[str, str], namespaces: list[str]
) -> None:
    job = copy.deepcopy(_rendered_pytorchjob(rendered))
    job["spec"]["nprocsPerNode"] = job["spec"].pop("nprocPerNode")
    result = apiserver.apply(api_server, yaml.safe_dump(job), dry_run=True)
    assert result.returncode != 0
    assert any(".spec.nprocsPerNode: field not declared in schema" in e for e in result.errors), (
        result.errors
    )


def test_pytorchjob_with_wrong_type_is_refused(
    api_server: ApiServer, rendered: dict[str, str], namespaces: list[str]
) -> None:
    job = copy.deepcopy(_rendered_pytorchjob(rendered))
    job["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = "one"
    result = apiserver.apply(api_server, yaml.safe_dump(job), dry_run=True)
    assert result.returncode != 0
    assert any("pytorchReplicaSpecs.Master.replicas" in e for e in result.errors), result.errors


@pytest.mark.parametrize(
    ("account", "namespace", "expected"),
    [
        (RUNNER, PLATFORM_NAMESPACE, True),
        (KFP_RUNNER, PLATFORM_NAMESPACE, True),
        (RUNNER, OTHER_NAMESPACE, False),
        (RUNNER, "kubeflow", False),
        (RUNNER, "", False),
    ],
)
@pytest.mark.parametrize(("group", "resource", "verbs"), LAUNCHED)
def test_runner_launches_only_in_the_platform_namespace(
    api_server: ApiServer,
    rbac_applied: None,
    account: str,
    namespace: str,
    expected: bool,
    group: str,
    resource: str,
    verbs: tuple[str, ...],
) -> None:
    """Every launcher verb in its own namespace; none elsewhere nor cluster-wide (``""``)."""
    allowed = {
        verb: apiserver.service_account_can(
            api_server, account, verb, resource, group=group, namespace=namespace
        )
        for verb in verbs
    }
    assert allowed == dict.fromkeys(verbs, expected)


@pytest.mark.parametrize(
    ("verb", "group", "resource", "namespace"),
    [
        ("get", "", "secrets", PLATFORM_NAMESPACE),
        ("list", "", "secrets", ""),
        ("create", "", "pods", PLATFORM_NAMESPACE),
        ("update", "kubeflow.org", "pytorchjobs/status", PLATFORM_NAMESPACE),
        ("create", "rbac.authorization.k8s.io", "rolebindings", PLATFORM_NAMESPACE),
        ("list", "", "namespaces", ""),
    ],
)
def test_runner_has_nothing_more(
    api_server: ApiServer,
    rbac_applied: None,
    verb: str,
    group: str,
    resource: str,
    namespace: str,
) -> None:
    assert not apiserver.service_account_can(
        api_server, RUNNER, verb, resource, group=group, namespace=namespace
    )


def test_other_accounts_may_not_launch(api_server: ApiServer, rbac_applied: None) -> None:
    assert not apiserver.service_account_can(
        api_server,
        f"{PLATFORM_NAMESPACE}/twin-trainer",
        "create",
        "pytorchjobs",
        group="kubeflow.org",
        namespace=PLATFORM_NAMESPACE,
    )


def test_runner_token_works_end_to_end(
    api_server: ApiServer, rendered: dict[str, str], rbac_applied: None
) -> None:
    """With a real ServiceAccount token, as the launcher pod will have: it creates and
    deletes a PyTorchJob in its namespace and is forbidden from reading secrets."""
    job = copy.deepcopy(_rendered_pytorchjob(rendered))
    job["metadata"]["name"] = f"runner-{uuid.uuid4().hex[:8]}"
    token = apiserver.service_account_token(api_server, RUNNER)
    with api_server.api_client(token) as api:
        objects = k8s_client.CustomObjectsApi(api)
        objects.create_namespaced_custom_object(
            namespace=PLATFORM_NAMESPACE, body=job, **PYTORCHJOB
        )
        objects.delete_namespaced_custom_object(
            namespace=PLATFORM_NAMESPACE, name=job["metadata"]["name"], **PYTORCHJOB
        )
        with pytest.raises(ApiException) as refused:
            k8s_client.CoreV1Api(api).list_namespaced_secret(PLATFORM_NAMESPACE)
    assert refused.value.status == 403


def test_pytorchjob_status_can_be_driven_like_the_operator(
    api_server: ApiServer, rendered: dict[str, str], namespaces: list[str]
) -> None:
    """No controller runs here, so the test writes the status the training operator would;
    this is what launcher code that watches a PyTorchJob is tested against."""
    job = copy.deepcopy(_rendered_pytorchjob(rendered))
    name = f"sft-{uuid.uuid4().hex[:8]}"
    job["metadata"]["name"] = name
    job["spec"]["runPolicy"]["suspend"] = False
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    succeeded = {
        "type": "Succeeded",
        "status": "True",
        "reason": "PyTorchJobSucceeded",
        "message": f"PyTorchJob {PLATFORM_NAMESPACE}/{name} successfully completed.",
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    }
    with api_server.api_client() as api:
        objects = k8s_client.CustomObjectsApi(api)
        created = objects.create_namespaced_custom_object(
            namespace=PLATFORM_NAMESPACE, body=job, **PYTORCHJOB
        )
        assert "status" not in created or not created["status"].get("conditions")
        # Status written through the main resource is dropped: the subresource is real.
        ignored = objects.patch_namespaced_custom_object(
            namespace=PLATFORM_NAMESPACE,
            name=name,
            body={"status": {"conditions": [succeeded]}},
            **PYTORCHJOB,
        )
        assert not ignored.get("status", {}).get("conditions")
        objects.patch_namespaced_custom_object_status(
            namespace=PLATFORM_NAMESPACE,
            name=name,
            body={
                "status": {
                    "conditions": [succeeded],
                    "completionTime": now,
                    "replicaStatuses": {"Master": {"succeeded": 1}},
                }
            },
            **PYTORCHJOB,
        )
        read = objects.get_namespaced_custom_object(
            namespace=PLATFORM_NAMESPACE, name=name, **PYTORCHJOB
        )
        objects.delete_namespaced_custom_object(
            namespace=PLATFORM_NAMESPACE, name=name, **PYTORCHJOB
        )
    assert [(c["type"], c["status"]) for c in read["status"]["conditions"]] == [
        ("Succeeded", "True")
    ]
    assert read["status"]["replicaStatuses"]["Master"]["succeeded"] == 1
    assert read["spec"] == created["spec"]
    assert read["metadata"]["generation"] == created["metadata"]["generation"]
