"""Deploying a registry version as a KServe InferenceService, against a real kube-apiserver
with the official KServe CRDs and a real MinIO registry.

No KServe controller runs here, so each test plays it: while the deployer waits in a
thread, the test writes the InferenceService's status subresource (the Ready condition,
``canaryStatuses``) the way the controller would. The predictor Services are stood in for
by one loopback HTTP server that answers the OpenAI chat route as the twin does, or fails
on purpose; the deployer reaches it through ``serving.deployment.smoke_url``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s_client
from typer.testing import CliRunner

from tests.support import apiserver
from tests.support.apiserver import ApiServer
from tests.support.loopback import serving
from tests.support.openai_server import chat_completion
from twin_lib.cli import app
from twin_lib.k8s import inference_service as isvc_lib
from twin_lib.k8s import validate
from twin_lib.registry.models import DeploymentAction, ModelStatus, ModelVersion
from twin_lib.registry.store import ModelRegistry
from twin_lib.settings import TwinSettings, to_env
from twin_lib.steps.deploy import (
    DeploymentError,
    DeploymentResult,
    NotDeployableError,
    deploy_version,
    rollback,
)

pytestmark = [pytest.mark.apiserver, pytest.mark.integration]

RESOURCE = {"group": isvc_lib.GROUP, "version": isvc_lib.VERSION, "plural": isvc_lib.PLURAL}


@dataclass
class Twins:
    """What the stand-in predictor Services answer, and every request they got."""

    mode: str = "ok"  # ok | 500 | empty | other-version
    requests: list[tuple[str, dict]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(twins: Twins) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with twins.lock:
                twins.requests.append((self.path, request))
                mode = twins.mode
            if mode == "500":
                status, body = 500, {"error": {"message": "model failed to load"}}
            else:
                text = "" if mode == "empty" else "I write about retrieval and evaluation."
                body = {
                    **chat_completion("chatcmpl-1", request["model"], text),
                    "sources": [],
                    "answer_id": "ans-1",
                }
                if mode == "other-version":
                    body["model_version"] = "twin/v9999"
                status = 200
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture(scope="module")
def predictors() -> Iterator[tuple[str, Twins]]:
    twins = Twins()
    with serving(_handler(twins)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/{{service}}", twins


@pytest.fixture
def twins(predictors: tuple[str, Twins]) -> Twins:
    twins = predictors[1]
    twins.mode = "ok"
    twins.requests.clear()
    return twins


@pytest.fixture(scope="module")
def namespace(api_server: ApiServer) -> str:
    name = f"serving-{uuid.uuid4().hex[:6]}"
    doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    result = apiserver.apply(api_server, yaml.safe_dump(doc))
    assert result.returncode == 0, result.errors
    return name


@pytest.fixture
def cfg(
    stack_settings: TwinSettings, namespace: str, predictors: tuple[str, Twins], twins: Twins
) -> TwinSettings:
    """A model and an InferenceService of this test's own; short timeouts; the stand-in
    predictors answer well until the test says otherwise."""
    settings = stack_settings.model_copy(deep=True)
    tag = uuid.uuid4().hex[:6]
    settings.serving.model_name = f"twin-{tag}"
    deployment = settings.serving.deployment
    deployment.isvc_name = f"twin-{tag}"
    deployment.namespace = namespace
    deployment.ready_timeout_s = 20.0
    deployment.poll_interval_s = 0.05
    deployment.smoke_url = predictors[0]
    deployment.smoke_timeout_s = 10.0
    return settings


@pytest.fixture
def registry(stack_settings: TwinSettings) -> ModelRegistry:
    return ModelRegistry(stack_settings.minio, stack_settings.registry)


def _register(registry: ModelRegistry, settings: TwinSettings, *, approve: bool = True) -> str:
    name = settings.serving.model_name
    assert name
    reservation = registry.reserve(name, by="test")
    registry.register_candidate(
        name,
        reservation.output_uri,
        hyperparameters={},
        base_model="tiny",
        dataset_snapshots={},
        metrics={},
        by="test",
    )
    if approve:
        registry.transition(name, reservation.version, "approved", by="reviewer", reason="ok")
    return reservation.version


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _set_status(
    objects: k8s_client.CustomObjectsApi,
    settings: TwinSettings,
    *,
    ready: bool,
    canary: str | None = None,
    canary_ready: bool = False,
) -> None:
    """What the KServe controller writes once it has reconciled the current spec."""
    deployment = settings.serving.deployment
    status: dict = {
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "reason": "" if ready else "CanariesNotReady",
                "lastTransitionTime": _now(),
            }
        ],
        "url": f"http://{deployment.isvc_name}-{deployment.namespace}.example.com",
        "deploymentMode": "Standard",
    }
    if canary is not None:
        status["canaryStatuses"] = [
            {"name": canary, "ready": canary_ready, "trafficPercent": deployment.canary_percent}
        ]
    objects.patch_namespaced_custom_object_status(
        namespace=deployment.namespace,
        name=deployment.isvc_name,
        body={"status": status},
        **RESOURCE,
    )


def _get(objects: k8s_client.CustomObjectsApi, settings: TwinSettings) -> dict:
    deployment = settings.serving.deployment
    return objects.get_namespaced_custom_object(
        namespace=deployment.namespace, name=deployment.isvc_name, **RESOURCE
    )


def _when(
    objects: k8s_client.CustomObjectsApi,
    settings: TwinSettings,
    future: Future,
    condition: Callable[[dict], bool],
) -> dict:
    """The InferenceService once ``condition`` holds (the deployer got that far)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            found = _get(objects, settings)
        except k8s_client.ApiException as error:
            assert error.status == 404
        else:
            if condition(found):
                return found
        if future.done():
            future.result()
            raise AssertionError("the deployer returned before the expected state")
        time.sleep(0.05)
    raise AssertionError("the InferenceService never reached the expected state")


def _deploy(
    settings: TwinSettings, version: str, api: k8s_client.ApiClient
) -> Future[DeploymentResult]:
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(deploy_version, settings, version, by="test deployer", api=api)
    pool.shutdown(wait=False)
    return future


def _has_canary(version: str) -> Callable[[dict], bool]:
    return lambda found: isvc_lib.canary_names(found) == [version]


def _first_deployed(
    settings: TwinSettings,
    registry: ModelRegistry,
    api: k8s_client.ApiClient,
    objects: k8s_client.CustomObjectsApi,
) -> str:
    version = _register(registry, settings)
    future = _deploy(settings, version, api)
    _when(objects, settings, future, lambda found: True)
    _set_status(objects, settings, ready=True)
    assert future.result(timeout=30).action == DeploymentAction.CREATED
    return version


def _model(registry: ModelRegistry, settings: TwinSettings, version: str) -> ModelVersion:
    assert settings.serving.model_name
    return registry.get(settings.serving.model_name, version)


def _actions(model: ModelVersion) -> list[str]:
    return [str(event.action) for event in model.deployments]


def test_built_service_passes_the_crd_schema(
    cfg: TwinSettings, registry: ModelRegistry, tools_cache: Path
) -> None:
    """Strictly, against the official CRD (the pod-security check with its runtime is in
    test_pod_security.py); a misspelt field would be reported."""
    cfg.serving.deployment.gpus = 1
    model = _model(registry, cfg, _register(registry, cfg))
    body = yaml.safe_dump(isvc_lib.inference_service(cfg.serving.deployment, "llm-twin", model))
    assert validate.kubeconform(body, tools_cache) == []
    misspelt = validate.kubeconform(body.replace("storageUri:", "storageUrl:"), tools_cache)
    assert [f.obj for f in misspelt] == [f"InferenceService/{cfg.serving.deployment.isvc_name}"]


def test_first_deploy_creates_the_service_and_marks_the_version_deployed(
    cfg: TwinSettings,
    registry: ModelRegistry,
    api: k8s_client.ApiClient,
    objects: k8s_client.CustomObjectsApi,
    twins: Twins,
) -> None:
    version = _register(registry, cfg)
    future = _deploy(cfg, version, api)
    created = _when(objects, cfg, future, lambda found: True)
    predictor = created["spec"]["predictor"]
    assert predictor["name"] == version
    assert predictor["model"]["storageUri"] == _model(registry, cfg, version).merged_uri
    assert {"name": "TWIN_SERVING__VERSION", "value": version} in predictor["model"]["env"]
    assert created["metadata"]["annotations"][isvc_lib.DEPLOYMENT_MODE] == "Standard"
    time.sleep(0.3)
    assert not future.done(), "deployed before the service was ready"
    _set_status(objects, cfg, ready=True)
    result = future.result(timeout=30)
    assert (result.action, result.previous) == (DeploymentAction.CREATED, None)
    model = _model(registry, cfg, version)
    assert model.status is ModelStatus.DEPLOYED
    assert _actions(model) == ["created"]
    (path, request), *_ = twins.requests
    service = f"{cfg.serving.deployment.isvc_name}-{version}-predictor"
    assert path == f"/{service}/openai/v1/chat/completions"
    assert request["model"] == cfg.serving.deployment.isvc_name


def test_ready_canary_that_answers_is_promoted_and_the_old_version_kept_for_rollback(
    cfg: TwinSettings,
    registry: ModelRegistry,
    api: k8s_client.ApiClient,
    objects: k8s_client.CustomObjectsApi,
    twins: Twins,
) -> None:
    old = _first_deployed(cfg, registry, api, objects)
    new = _register(registry, cfg)
    future = _deploy(cfg, new, api)
    rolling = _when(objects, cfg, future, _has_canary(new))
    assert rolling["spec"]["predictor"]["name"] == old
    (canary,) = rolling["spec"]["canary"]
    assert canary["trafficPercent"] == 10
    assert "minReplicas" not in canary["predictor"]
    _set_status(objects, cfg, ready=False, canary=new, canary_ready=False)
    time.sleep(0.3)
    assert not future.done(), "promoted a canary that was not ready"
    _set_status(objects, cfg, ready=True, canary=new, canary_ready=True)
    result = future.result(timeout=30)
    assert (result.action, result.previous) == (DeploymentAction.PROMOTED, old)
    served = _get(objects, cfg)
    assert "canary" not in served["spec"]
    assert served["spec"]["predictor"]["name"] == new
    assert served["spec"]["predictor"]["minReplicas"] == 1
    assert served["spec"]["predictor"]["model"]["storageUri"].endswith(f"/{new}/merged/")
    promoted, superseded = _model(registry, cfg, new), _model(registry, cfg, old)
    assert promoted.status is ModelStatus.DEPLOYED
    assert _actions(promoted) == ["canary", "promoted"]
    assert superseded.status is ModelStatus.APPROVED
    assert superseded.history[-1].reason == f"superseded by {new}; kept for rollback"
    assert twins.requests[-1][0].startswith(f"/{cfg.serving.deployment.isvc_name}-{new}-")

    back = rollback(cfg, by="on-call", api=api)
    assert (back.version, back.previous) == (old, new)
    assert _get(objects, cfg)["spec"]["predictor"]["name"] == old
    assert _model(registry, cfg, old).status is ModelStatus.DEPLOYED
    assert _model(registry, cfg, new).status is ModelStatus.APPROVED
    assert _actions(_model(registry, cfg, new)) == ["canary", "promoted", "rolled_back"]
    name = cfg.serving.model_name or ""
    shown = CliRunner().invoke(app, ["models", "show", name, new], env=to_env(cfg))
    assert shown.exit_code == 0, shown.output
    for text in ("deployments", "canary", "promoted", "rolled_back", "10%", "on-call"):
        assert text in shown.output


def _assert_rolled_back(
    settings: TwinSettings,
    registry: ModelRegistry,
    objects: k8s_client.CustomObjectsApi,
    old: str,
    new: str,
    reason: str,
) -> None:
    served = _get(objects, settings)
    assert "canary" not in served["spec"]
    assert served["spec"]["predictor"]["name"] == old
    failed = _model(registry, settings, new)
    assert failed.status is ModelStatus.APPROVED
    assert _actions(failed) == ["canary", "rolled_back"]
    assert reason in failed.deployments[-1].reason
    assert _model(registry, settings, old).status is ModelStatus.DEPLOYED


def test_canary_never_ready_is_removed_at_the_timeout(
    cfg: TwinSettings,
    registry: ModelRegistry,
    api: k8s_client.ApiClient,
    objects: k8s_client.CustomObjectsApi,
    twins: Twins,
) -> None:
    old = _first_deployed(cfg, registry, api, objects)
    new = _register(registry, cfg)
    cfg.serving.deployment.ready_timeout_s = 1.5
    asked = len(twins.requests)
    future = _deploy(cfg, new, api)
    _when(objects, cfg, future, _has_canary(new))
    _set_status(objects, cfg, ready=False, canary=new, canary_ready=False)
    with pytest.raises(DeploymentError, match=rf"canary was removed; {old} keeps serving"):
        future.result(timeout=30)
    _assert_rolled_back(cfg, registry, objects, old, new, "not ready after 2s")
    assert len(twins.requests) == asked, "a canary that never got ready was asked"


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("500", "HTTP 500"), ("empty", "empty answer"), ("other-version", "twin/v9999")],
)
def test_canary_whose_smoke_answer_fails_is_removed(
    cfg: TwinSettings,
    registry: ModelRegistry,
    api: k8s_client.ApiClient,
    objects: k8s_client.CustomObjectsApi,
    twins: Twins,
    mode: str,
    reason: str,
) -> None:
    old = _first_deployed(cfg, registry, api, objects)
    new = _register(registry, cfg)
    twins.mode = mode
    future = _deploy(cfg, new, api)
    _when(objects, cfg, future, _has_canary(new))
    _set_status(objects, cfg, ready=True, canary=new, canary_ready=True)
    with pytest.raises(DeploymentError, match="smoke question"):
        future.result(timeout=30)
    _assert_rolled_back(cfg, registry, objects, old, new, reason)


@pytest.mark.parametrize("status", ["candidate", "rejected"])
def test_unapproved_version_is_refused_before_the_cluster_is_asked(
    cfg: TwinSettings, registry: ModelRegistry, status: str
) -> None:
    version = _register(registry, cfg, approve=False)
    if status == "rejected":
        assert cfg.serving.model_name
        registry.transition(cfg.serving.model_name, version, status, by="r", reason="bad")
    asked: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(500)
            self.end_headers()

        do_POST = do_PATCH = do_GET  # noqa: N815

    with serving(Recorder) as cluster:
        configuration = k8s_client.Configuration()
        configuration.host = f"http://127.0.0.1:{cluster.server_address[1]}"
        with (
            k8s_client.ApiClient(configuration) as api,
            pytest.raises(NotDeployableError, match=f"is {status}: only an approved version"),
        ):
            deploy_version(cfg, version, by="test", api=api)
    assert asked == []
    assert _model(registry, cfg, version).deployments == []


def test_a_second_rollout_during_a_canary_is_refused(
    cfg: TwinSettings,
    registry: ModelRegistry,
    api: k8s_client.ApiClient,
    objects: k8s_client.CustomObjectsApi,
) -> None:
    _first_deployed(cfg, registry, api, objects)
    new, newer = _register(registry, cfg), _register(registry, cfg)
    future = _deploy(cfg, new, api)
    _when(objects, cfg, future, _has_canary(new))
    with pytest.raises(DeploymentError, match=f"already rolling out {new}"):
        deploy_version(cfg, newer, by="someone else", api=api)
    back = rollback(cfg, by="on-call", api=api)
    assert back.action == DeploymentAction.ROLLED_BACK
    assert "canary" not in _get(objects, cfg)["spec"]
    with pytest.raises(DeploymentError):
        future.result(timeout=30)


def test_cli_prints_the_service_without_sending_it_and_names_what_is_wrong(
    cfg: TwinSettings, registry: ModelRegistry, api_server: ApiServer
) -> None:
    cfg.kubernetes.kubeconfig = api_server.kubeconfig
    approved, candidate = _register(registry, cfg), _register(registry, cfg, approve=False)
    runner, env = CliRunner(), to_env(cfg)
    printed = runner.invoke(app, ["deploy", approved, "--dry-run"], env=env)
    assert printed.exit_code == 0, printed.output
    body = yaml.safe_load(printed.output.split("✔")[0])
    assert body["spec"]["predictor"]["name"] == approved
    assert body["metadata"]["namespace"] == cfg.serving.deployment.namespace
    refused = runner.invoke(app, ["deploy", candidate], env=env)
    assert refused.exit_code == 1
    assert f"{candidate} is candidate: only an approved version is deployed" in refused.output
    nothing = runner.invoke(app, ["rollback"], env=env)
    assert nothing.exit_code == 1
    assert "does not exist: nothing to roll back" in nothing.output


def test_first_version_whose_model_fails_to_load_fails_without_waiting_out_the_timeout(
    cfg: TwinSettings,
    registry: ModelRegistry,
    api: k8s_client.ApiClient,
    objects: k8s_client.CustomObjectsApi,
    twins: Twins,
) -> None:
    cfg.serving.deployment.ready_timeout_s = 60.0
    version = _register(registry, cfg)
    future = _deploy(cfg, version, api)
    _when(objects, cfg, future, lambda found: True)
    deployment = cfg.serving.deployment
    objects.patch_namespaced_custom_object_status(
        namespace=deployment.namespace,
        name=deployment.isvc_name,
        body={
            "status": {
                "modelStatus": {
                    "transitionStatus": "BlockedByFailedLoad",
                    "lastFailureInfo": {"reason": "ModelLoadFailed", "message": "no config.json"},
                }
            }
        },
        **RESOURCE,
    )
    started = time.monotonic()
    with pytest.raises(DeploymentError, match=r"ModelLoadFailed: no config\.json"):
        future.result(timeout=30)
    assert time.monotonic() - started < 10
    failed = _model(registry, cfg, version)
    assert failed.status is ModelStatus.APPROVED
    assert _actions(failed) == ["created", "failed"]
    assert twins.requests == []


def test_a_service_the_deployer_did_not_make_is_refused_by_name(
    cfg: TwinSettings,
    registry: ModelRegistry,
    api: k8s_client.ApiClient,
    objects: k8s_client.CustomObjectsApi,
) -> None:
    """Like the static InferenceService older manifests applied: a predictor without a name."""
    version = _register(registry, cfg)
    deployment = cfg.serving.deployment
    model = _model(registry, cfg, version)
    body = isvc_lib.inference_service(deployment, deployment.namespace or "", model)
    del body["spec"]["predictor"]["name"]
    objects.create_namespaced_custom_object(namespace=deployment.namespace, body=body, **RESOURCE)
    with pytest.raises(DeploymentError, match=r"unnamed predictor.*Delete it"):
        deploy_version(cfg, version, by="test", api=api)
    assert "canary" not in _get(objects, cfg)["spec"]
    assert _model(registry, cfg, version).deployments == []
