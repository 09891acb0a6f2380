"""The cluster launchers against a real kube-apiserver with the official CRDs installed.

No operator runs here, so each test plays the operator: while the launcher waits in a
thread, the test writes the status subresource the training operator (PyTorchJob) or
Kubeflow Trainer (TrainJob) would write, and checks the launcher's reaction. Every object
is created with strict field validation, i.e. checked against the CRD schemas as served.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import yaml
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from tests.support import apiserver
from tests.support.apiserver import ApiServer
from twin_lib.k8s import training_jobs, validate
from twin_lib.k8s.training_jobs import (
    PYTORCHJOB,
    TRAINJOB,
    ClusterJobSpec,
    JobKind,
    TrainingJobFailedError,
    TrainingJobTimeoutError,
)
from twin_lib.training.config import TrainingConfig
from twin_lib.training.launchers import ClusterLauncher, LaunchResult

pytestmark = pytest.mark.apiserver

KINDS = {"pytorchjob": PYTORCHJOB, "trainjob": TRAINJOB}
FAST = {"poll_interval_s": 0.05, "timeout_s": 30.0, "stream_logs": True}


def _config(run_name: str) -> TrainingConfig:
    return TrainingConfig(
        base_model="s3://twin-models/base/tiny/",
        sft_data={
            "train": "s3://twin-datasets/instruction/snap/train.parquet",
            "test": "s3://twin-datasets/instruction/snap/test.parquet",
        },
        output_uri="s3://twin-models/registry/twin/v0001/",
        run_name=run_name,
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(kind: JobKind, type_: str, status: str, reason: str, message: str) -> dict:
    condition = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": _now(),
    }
    if kind is PYTORCHJOB:
        condition["lastUpdateTime"] = _now()
    return condition


def _new_namespace(
    api_server: ApiServer, prefix: str, *extra: dict, restricted: bool = False
) -> str:
    """A fresh namespace (and ``extra`` objects in it, e.g. a ServiceAccount), for real;
    ``restricted`` labels it to enforce and warn at Pod Security ``restricted``."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    labels = (
        {f"pod-security.kubernetes.io/{m}": "restricted" for m in ("enforce", "warn")}
        if restricted
        else {}
    )
    docs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}},
        *({**doc, "metadata": {**doc["metadata"], "namespace": name}} for doc in extra),
    ]
    result = apiserver.apply(api_server, yaml.safe_dump_all(docs))
    assert result.returncode == 0, result.errors
    return name


@pytest.fixture(scope="module")
def namespace(api_server: ApiServer) -> str:
    """A namespace of this module's own, holding the dev overlay's suspended defaults."""
    return _new_namespace(api_server, "training")


def _rendered(rendered: dict[str, str], overlay: str, kind: str) -> dict:
    (doc,) = (d for d in validate.documents(rendered[overlay]) if d["kind"] == kind)
    return copy.deepcopy(doc)


@pytest.fixture(scope="module")
def dev_defaults(api_server: ApiServer, rendered: dict[str, str], namespace: str) -> dict:
    """The dev overlay's suspended PyTorchJob defaults and TrainingRuntime, applied for real."""
    objects = [_rendered(rendered, "overlays/dev", k) for k in ("PyTorchJob", "TrainingRuntime")]
    for doc in objects:
        doc["metadata"]["namespace"] = namespace
    result = apiserver.apply(api_server, yaml.safe_dump_all(objects))
    assert result.returncode == 0, result.errors
    return objects[0]


def _launcher(api_server: ApiServer, backend: str, namespace: str) -> ClusterLauncher:
    return ClusterLauncher(backend, namespace, api_server.api_client)  # type: ignore[arg-type]


def _created_jobs(
    objects: k8s_client.CustomObjectsApi, kind: JobKind, namespace: str, run_name: str
) -> list[dict]:
    items = objects.list_namespaced_custom_object(namespace=namespace, **kind.resource())["items"]
    return [job for job in items if job["metadata"]["name"].startswith(f"{run_name}-")]


def _wait_created(
    objects: k8s_client.CustomObjectsApi,
    kind: JobKind,
    namespace: str,
    run_name: str,
    future: Future,
) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = _created_jobs(objects, kind, namespace, run_name)
        if found:
            return found[0]["metadata"]["name"]
        if future.done():
            future.result()
            raise AssertionError("the launcher returned before creating a job")
        time.sleep(0.05)
    raise AssertionError(f"no {kind.kind} for {run_name} appeared")


def _set_status(
    objects: k8s_client.CustomObjectsApi,
    kind: JobKind,
    namespace: str,
    name: str,
    conditions: list[dict],
) -> None:
    objects.patch_namespaced_custom_object_status(
        namespace=namespace,
        name=name,
        body={"status": {"conditions": conditions}},
        **kind.resource(),
    )


def _run_driven(
    api_server: ApiServer,
    objects: k8s_client.CustomObjectsApi,
    backend: str,
    namespace: str,
    spec: ClusterJobSpec,
    drive: Callable[[str, Future[LaunchResult]], None],
) -> tuple[Future[LaunchResult], str]:
    """Launch in a thread; once the job exists, ``drive(name, future)`` plays the operator."""
    run_name = f"run-{uuid.uuid4().hex[:6]}"
    launcher = _launcher(api_server, backend, namespace)
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(launcher.launch, _config(run_name), spec)
    pool.shutdown(wait=False)
    name = _wait_created(objects, KINDS[backend], namespace, run_name, future)
    drive(name, future)
    return future, name


def _dry_run(api: k8s_client.ApiClient, kind: JobKind, namespace: str, body: dict) -> dict:
    """Create ``body`` as the launcher does (strict field validation), persisting nothing."""
    return k8s_client.CustomObjectsApi(api).create_namespaced_custom_object(
        namespace=namespace, body=body, field_validation="Strict", dry_run="All", **kind.resource()
    )


def test_pytorchjob_is_built_from_the_served_defaults(
    api_server: ApiServer, api: k8s_client.ApiClient, dev_defaults: dict, namespace: str
) -> None:
    spec = ClusterJobSpec(
        nodes=3,
        gpus_per_node=4,
        node_selector={"nvidia.com/gpu.present": "true"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        cache_pvc="twin-train-cache",
    )
    config = _config("gpu-run")
    body = _launcher(api_server, "pytorchjob", namespace).body(api, config, spec)
    created = _dry_run(api, PYTORCHJOB, namespace, body)
    job = created["spec"]
    assert job["runPolicy"]["suspend"] is False
    assert job["nprocPerNode"] == "4"
    replicas = job["pytorchReplicaSpecs"]
    assert (replicas["Master"]["replicas"], replicas["Worker"]["replicas"]) == (1, 2)
    for replica in replicas.values():
        pod = replica["template"]["spec"]
        (container,) = pod["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 4
        assert container["resources"]["requests"]["nvidia.com/gpu"] == 4
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert pod["tolerations"] == spec.tolerations
        assert {"persistentVolumeClaim": {"claimName": "twin-train-cache"}, "name": "cache"} in (
            pod["volumes"]
        )
        assert {"configMapRef": {"name": "twin-endpoints"}} in container["envFrom"]
        assert {"secretRef": {"name": "twin-credentials"}} in container["envFrom"]
        # From the dev overlay's defaults object, which the launcher read from the server.
        assert {"name": "ACCELERATE_USE_CPU", "value": "true"} in container["env"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        command = container["command"]
        assert command[:5] == ["torchrun", "--module", "twin_lib.training.train", "--", "--config"]
        assert TrainingConfig.model_validate_json(command[5]) == config
    assert created["metadata"]["name"].startswith("gpu-run-")


def test_pytorchjob_without_defaults_object_uses_the_builtin_pod(
    api_server: ApiServer,
    api: k8s_client.ApiClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    empty = _new_namespace(api_server, "nodefaults")
    with caplog.at_level(logging.WARNING, logger=training_jobs.__name__):
        body = _launcher(api_server, "pytorchjob", empty).body(
            api, _config("fallback"), ClusterJobSpec(nodes=1)
        )
    assert "using the built-in pod template" in caplog.text
    created = _dry_run(api, PYTORCHJOB, empty, body)
    assert list(created["spec"]["pytorchReplicaSpecs"]) == ["Master"]
    assert created["spec"]["nprocPerNode"] == "1"


def test_trainjob_is_accepted_by_the_trainer_crd(
    api_server: ApiServer, api: k8s_client.ApiClient, dev_defaults: dict, namespace: str
) -> None:
    spec = ClusterJobSpec(
        nodes=2, gpus_per_node=8, cpu="16", memory="128Gi", node_selector={"pool": "a100"}
    )
    body = _launcher(api_server, "trainjob", namespace).body(api, _config("tj"), spec)
    created = _dry_run(api, TRAINJOB, namespace, body)
    trainer = created["spec"]["trainer"]
    assert created["spec"]["runtimeRef"] == {
        "apiGroup": "trainer.kubeflow.org",
        "kind": "TrainingRuntime",
        "name": "twin-torch-distributed",
    }
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 8)
    assert trainer["resourcesPerNode"]["limits"] == {
        "cpu": "16",
        "memory": "128Gi",
        "nvidia.com/gpu": 8,
    }
    secret_keys = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for e in trainer["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert secret_keys == {"TWIN_MINIO__ACCESS_KEY", "TWIN_MINIO__SECRET_KEY"}
    (override,) = created["spec"]["podSpecOverrides"]
    assert override["nodeSelector"] == {"pool": "a100"}
    assert override["serviceAccountName"] == "twin-trainer"


@pytest.mark.parametrize("backend", sorted(KINDS))
def test_unknown_field_is_refused(
    api_server: ApiServer,
    api: k8s_client.ApiClient,
    dev_defaults: dict,
    namespace: str,
    backend: str,
) -> None:
    """The strict creation the launcher uses does check the schema."""
    kind = KINDS[backend]
    body = _launcher(api_server, backend, namespace).body(api, _config("bad"), ClusterJobSpec())
    body["spec"]["numNodes"] = 2
    with pytest.raises(ApiException) as refused:
        _dry_run(api, kind, namespace, body)
    assert refused.value.status in (400, 422)
    assert 'unknown field "spec.numNodes"' in json.loads(refused.value.body)["message"]


@pytest.mark.parametrize("backend", sorted(KINDS))
def test_launcher_returns_when_the_operator_reports_success(
    api_server: ApiServer,
    api: k8s_client.ApiClient,
    objects: k8s_client.CustomObjectsApi,
    dev_defaults: dict,
    namespace: str,
    backend: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Also: the lead pod appears and runs, but its log cannot be read (no kubelet here);
    log streaming is best effort and the run still succeeds."""
    caplog.set_level(logging.INFO, logger=training_jobs.__name__)
    kind = KINDS[backend]
    spec = ClusterJobSpec(**FAST)

    def succeed(name: str, _: Future[LaunchResult]) -> None:
        running = _condition(kind, "Running", "True", "Running", "running")
        _set_status(objects, kind, namespace, name, [running])
        _running_lead_pod(api, kind, namespace, name)
        time.sleep(0.5)
        done = _condition(kind, kind.success_condition, "True", "Done", "all replicas succeeded")
        _set_status(objects, kind, namespace, name, [running, done])

    future, name = _run_driven(api_server, objects, backend, namespace, spec, succeed)
    result = future.result(timeout=20)
    assert (result.backend, result.job_name, result.condition) == (
        backend,
        name,
        kind.success_condition,
    )
    assert result.job_spec is not None
    assert result.job_spec["metadata"]["name"] == name
    assert objects.get_namespaced_custom_object(namespace=namespace, name=name, **kind.resource())
    assert f"log stream of {name}-lead ended" in caplog.text


def _running_lead_pod(api: k8s_client.ApiClient, kind: JobKind, namespace: str, job: str) -> None:
    """The pod the operator would start for the job's first node, marked Running."""
    core = k8s_client.CoreV1Api(api)
    selector = kind.lead_pod_selector.format(name=job)
    labels = dict(pair.split("=", 1) for pair in selector.split(","))
    account = {"metadata": {"name": "default"}}
    try:
        core.create_namespaced_service_account(namespace, account)
    except ApiException as error:
        assert error.status == 409
    pod = {
        "metadata": {"name": f"{job}-lead", "labels": labels},
        "spec": {"containers": [{"name": "node", "image": "trainer"}]},
    }
    core.create_namespaced_pod(namespace, pod)
    core.patch_namespaced_pod_status(f"{job}-lead", namespace, {"status": {"phase": "Running"}})


@pytest.mark.parametrize("backend", sorted(KINDS))
def test_launcher_raises_the_operators_reason_on_failure(
    api_server: ApiServer,
    objects: k8s_client.CustomObjectsApi,
    dev_defaults: dict,
    namespace: str,
    backend: str,
) -> None:
    """A success-type condition whose status is "False" is not success (the public
    launchers' string-vs-object comparison); the Failed condition then ends the wait."""
    kind = KINDS[backend]
    spec = ClusterJobSpec(**FAST)
    not_yet = _condition(kind, kind.success_condition, "False", "Pending", "not done")

    def fail(name: str, future: Future[LaunchResult]) -> None:
        _set_status(objects, kind, namespace, name, [not_yet])
        time.sleep(0.5)
        assert not future.done(), "a False success condition ended the wait"
        failed = _condition(kind, "Failed", "True", "OOMKilled", "master-0 ran out of memory")
        _set_status(objects, kind, namespace, name, [not_yet, failed])

    future, _ = _run_driven(api_server, objects, backend, namespace, spec, fail)
    with pytest.raises(TrainingJobFailedError, match="OOMKilled: master-0 ran out of memory"):
        future.result(timeout=20)


@pytest.mark.parametrize("backend", sorted(KINDS))
def test_launcher_times_out_with_the_job_timeout_and_cleans_up(
    api_server: ApiServer,
    objects: k8s_client.CustomObjectsApi,
    dev_defaults: dict,
    namespace: str,
    backend: str,
) -> None:
    kind = KINDS[backend]
    spec = ClusterJobSpec(**{**FAST, "timeout_s": 1.0, "delete_after": True})
    started = time.monotonic()
    future, name = _run_driven(api_server, objects, backend, namespace, spec, lambda *_: None)
    with pytest.raises(TrainingJobTimeoutError, match=r"timeout of 1s"):
        future.result(timeout=20)
    assert time.monotonic() - started < 10
    with pytest.raises(ApiException) as gone:
        objects.get_namespaced_custom_object(namespace=namespace, name=name, **kind.resource())
    assert gone.value.status == 404


def test_launcher_fails_when_the_job_is_deleted_under_it(
    api_server: ApiServer,
    objects: k8s_client.CustomObjectsApi,
    dev_defaults: dict,
    namespace: str,
) -> None:
    spec = ClusterJobSpec(**FAST)

    def delete(name: str, _: Future[LaunchResult]) -> None:
        objects.delete_namespaced_custom_object(
            namespace=namespace, name=name, **PYTORCHJOB.resource()
        )

    future, _ = _run_driven(api_server, objects, "pytorchjob", namespace, spec, delete)
    with pytest.raises(TrainingJobFailedError, match="was deleted while it ran"):
        future.result(timeout=20)


@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/gpu"])
def test_training_runtime_pod_passes_pod_security_restricted(
    api_server: ApiServer, rendered: dict[str, str], overlay: str
) -> None:
    """Upstream's torch-distributed pod would be refused in the platform's restricted
    namespace; the platform's runtime's pod, as each overlay renders it, is not even warned
    about (a server dry run of it as a Pod, in a namespace enforcing restricted)."""
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "twin-trainer"}}
    name = _new_namespace(api_server, "restricted", account, restricted=True)
    runtime = _rendered(rendered, overlay, "TrainingRuntime")
    (job,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    template = job["template"]["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": "node-0", "namespace": name},
        "spec": template["spec"],
    }
    result = apiserver.apply(api_server, yaml.safe_dump(pod), dry_run=True)
    assert (result.returncode, result.errors, result.warnings) == (0, [], [])
    pod["spec"]["containers"][0].pop("securityContext")
    refused = apiserver.apply(api_server, yaml.safe_dump(pod), dry_run=True)
    assert any("violates PodSecurity" in e for e in refused.errors), refused.errors


def test_pipeline_runner_may_launch_trainjobs_only_in_the_platform_namespace(
    api_server: ApiServer, rendered: dict[str, str]
) -> None:
    docs = [
        d
        for d in validate.documents(rendered["overlays/dev"])
        if d["kind"] in ("Namespace", "ServiceAccount", "Role", "RoleBinding")
        and d["metadata"].get("namespace", "llm-twin") == "llm-twin"
    ]
    result = apiserver.apply(api_server, yaml.safe_dump_all(docs))
    assert result.returncode == 0, result.errors
    runner = "llm-twin/twin-pipeline-runner"

    def can(verb: str, namespace: str) -> bool:
        return apiserver.service_account_can(
            api_server, runner, verb, "trainjobs", group=TRAINJOB.group, namespace=namespace
        )

    verbs = ("create", "get", "watch", "delete")
    assert all(can(verb, "llm-twin") for verb in verbs)
    assert not any(can(verb, "default") for verb in verbs)
    assert not apiserver.service_account_can(
        api_server,
        runner,
        "update",
        "trainjobs/status",
        group=TRAINJOB.group,
        namespace="llm-twin",
    )
