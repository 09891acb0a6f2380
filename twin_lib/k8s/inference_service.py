"""The twin's KServe InferenceService: built with the KServe SDK models, rolled out by patches.

One InferenceService serves the twin in Standard (raw Deployment) mode. Its predictor is
named after the registry version it serves (``v0003``): KServe names a named predictor's
Deployment and Service ``{isvc}-{name}-predictor``, which makes each version addressable on
its own. A new version goes out as ``spec.canary`` (KServe >= 0.20: its own Deployment, a
share of the traffic, 0% being a dark launch); promoting it sets ``spec.predictor`` to the
canary's predictor and removes the canary, so the canary's pods become the stable ones
without a restart (see ``pkg/apis/serving/v1beta1/inference_service.go`` in KServe).

The patches are JSON patches (RFC 6902) that start with a ``test`` of what they expect to
find, so a concurrent rollout makes the API server refuse the patch instead of one rollout
silently undoing the other. The Python client sends every custom-object patch as a merge
patch, which can neither test nor replace a whole predictor, hence :func:`json_patch`.
KServe's own validation (a webhook, which no plain API server runs) only accepts a canary
when the deployment-mode annotation is exactly ``Standard`` (not the legacy
``RawDeployment``) and the canary predictor sets no autoscaling field; the builders keep to
both.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from kserve.models import (
    V1beta1CanarySpec,
    V1beta1InferenceService,
    V1beta1InferenceServiceSpec,
    V1beta1ModelFormat,
    V1beta1ModelSpec,
    V1beta1PredictorSpec,
)
from kubernetes import client as k8s_client
from kubernetes.client.exceptions import ApiException

from twin_lib.registry.models import ModelVersion
from twin_lib.settings import DeploymentSettings

log = logging.getLogger(__name__)

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
API_VERSION = f"{GROUP}/{VERSION}"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
STANDARD = "Standard"
GPU = "nvidia.com/gpu"
READY = "Ready"
# ModelStatus.transitionStatus values after which the predictor will not become ready.
FAILED_TRANSITIONS = ("BlockedByFailedLoad", "InvalidSpec")
# The runtime's container: KServe merges the model spec into the container of this name.
CONTAINER = "kserve-container"
LABELS = {"app.kubernetes.io/part-of": "llm-twin", "app.kubernetes.io/component": "serving"}
# The pod-level context of manifests/base/kserve.yaml; the container's comes from the runtime.
POD_SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
Body = dict[str, Any]


class InferenceServiceError(RuntimeError):
    """The InferenceService could not be read, changed, or did not become ready."""


def to_body(model: object) -> Any:
    """A KServe SDK model as the JSON the API server takes (camelCase keys, no nulls)."""
    return k8s_client.ApiClient().sanitize_for_serialization(model)


def service_name(isvc: str, version: str) -> str:
    """The Service (and Deployment) KServe creates for the predictor named ``version``."""
    return f"{isvc}-{version}-predictor"


def _resources(deployment: DeploymentSettings) -> k8s_client.V1ResourceRequirements | None:
    """Only what is configured: unset values leave the ServingRuntime's (the overlays')."""
    requests = {"cpu": deployment.cpu_request, "memory": deployment.memory_request}
    limits = {"cpu": deployment.cpu_limit, "memory": deployment.memory_limit}
    if deployment.gpus:
        requests[GPU] = limits[GPU] = str(deployment.gpus)
    requests = {k: v for k, v in requests.items() if v}
    limits = {k: v for k, v in limits.items() if v}
    if not requests and not limits:
        return None
    return k8s_client.V1ResourceRequirements(requests=requests or None, limits=limits or None)


def predictor(
    deployment: DeploymentSettings, model: ModelVersion, *, canary: bool = False
) -> V1beta1PredictorSpec:
    """The predictor serving ``model``: its merged weights, the twin runtime, and the
    environment that makes ``python -m twin_lib.serving`` load exactly this version.

    A canary has fixed replicas (KServe refuses autoscaling fields on one).
    """
    env = [
        k8s_client.V1EnvVar(name="TWIN_SERVING__MODEL_NAME", value=model.name),
        k8s_client.V1EnvVar(name="TWIN_SERVING__VERSION", value=model.version),
        k8s_client.V1EnvVar(name="TWIN_SERVING__BIND_HOST", value="0.0.0.0"),
    ]
    spec = V1beta1PredictorSpec(
        name=model.version,
        service_account_name=deployment.service_account,
        security_context=POD_SECURITY_CONTEXT,
        node_selector=deployment.node_selector or None,
        tolerations=list(deployment.tolerations) or None,
        model=V1beta1ModelSpec(
            name=CONTAINER,
            model_format=V1beta1ModelFormat(name=deployment.model_format),
            runtime=deployment.runtime,
            storage_uri=model.merged_uri,
            env=env,
            resources=_resources(deployment),
        ),
    )
    if not canary:
        spec.min_replicas = deployment.min_replicas
        spec.max_replicas = deployment.max_replicas
    return spec


def inference_service(deployment: DeploymentSettings, namespace: str, model: ModelVersion) -> Body:
    """A new InferenceService whose predictor serves ``model``."""
    isvc = V1beta1InferenceService(
        api_version=API_VERSION,
        kind="InferenceService",
        metadata=k8s_client.V1ObjectMeta(
            name=deployment.isvc_name,
            namespace=namespace,
            labels=LABELS,
            annotations={DEPLOYMENT_MODE: STANDARD},
        ),
        spec=V1beta1InferenceServiceSpec(predictor=predictor(deployment, model)),
    )
    return to_body(isvc)


def canary_patch(
    deployment: DeploymentSettings, current: str, model: ModelVersion, percent: int
) -> list[Body]:
    """Add ``model`` as the only canary of the predictor named ``current``."""
    canary = V1beta1CanarySpec(
        predictor=predictor(deployment, model, canary=True), traffic_percent=percent
    )
    return [
        {"op": "test", "path": "/spec/predictor/name", "value": current},
        {"op": "add", "path": "/spec/canary", "value": [to_body(canary)]},
    ]


def replace_predictor(deployment: DeploymentSettings, model: ModelVersion) -> Body:
    """The whole predictor replaced: a merge patch would keep keys the new one lacks."""
    return {
        "op": "replace",
        "path": "/spec/predictor",
        "value": to_body(predictor(deployment, model)),
    }


def promote_patch(deployment: DeploymentSettings, model: ModelVersion) -> list[Body]:
    """Make the canary serving ``model`` the predictor (same name: its pods carry on)."""
    return [
        {"op": "test", "path": "/spec/canary/0/predictor/name", "value": model.version},
        replace_predictor(deployment, model),
        {"op": "remove", "path": "/spec/canary"},
    ]


def remove_canary_patch(version: str) -> list[Body]:
    """Drop the canary serving ``version``; the predictor keeps all the traffic."""
    return [
        {"op": "test", "path": "/spec/canary/0/predictor/name", "value": version},
        {"op": "remove", "path": "/spec/canary"},
    ]


def restore_patch(deployment: DeploymentSettings, current: str, model: ModelVersion) -> list[Body]:
    """Serve ``model`` again instead of the predictor named ``current`` (a rollback)."""
    return [
        {"op": "test", "path": "/spec/predictor/name", "value": current},
        replace_predictor(deployment, model),
    ]


# -- reading the status the controller writes -----------------------------------------------


def predictor_name(isvc: Body) -> str:
    return isvc.get("spec", {}).get("predictor", {}).get("name", "")


def canary_names(isvc: Body) -> list[str]:
    return [c["predictor"].get("name", "") for c in isvc.get("spec", {}).get("canary") or []]


def condition(isvc: Body, type_: str) -> Body | None:
    for found in isvc.get("status", {}).get("conditions") or []:
        if found.get("type") == type_:
            return found
    return None


def _is_true(found: Body | None) -> bool:
    # Condition statuses are strings: only "True" is true.
    return found is not None and found.get("status") == "True"


def readiness(isvc: Body, version: str, *, canary: bool) -> tuple[bool, str]:
    """Whether ``version`` serves (its canary status, or it is the predictor, and the
    InferenceService's Ready condition), and a one-line account of the status for errors."""
    ready_condition = condition(isvc, READY)
    statuses = {s.get("name"): s for s in isvc.get("status", {}).get("canaryStatuses") or []}
    if canary:
        own = statuses.get(version)
        serving = own is not None and own.get("ready") is True
        part = f"canary {version} ready={own.get('ready') if own else 'no status'}"
    else:
        serving = predictor_name(isvc) == version
        part = f"predictor {predictor_name(isvc) or '?'}"
    ready = _is_true(ready_condition)
    reason = (ready_condition or {}).get("reason") or (ready_condition or {}).get("message", "")
    summary = f"{part}, Ready={(ready_condition or {}).get('status', 'unknown')}"
    return serving and ready, summary + (f" ({reason})" if reason else "")


def load_failure(isvc: Body) -> str | None:
    """Why the predictor's model failed to load, once KServe says it did (a crashing model
    server, a bad storageUri): waiting out the timeout would not change that."""
    model_status = isvc.get("status", {}).get("modelStatus") or {}
    if model_status.get("transitionStatus") not in FAILED_TRANSITIONS:
        return None
    info = model_status.get("lastFailureInfo") or {}
    detail = ": ".join(part for part in (info.get("reason"), info.get("message")) if part)
    return f"{model_status['transitionStatus']}" + (f" ({detail})" if detail else "")


# -- the API server -------------------------------------------------------------------------


class InferenceServices:
    """InferenceServices of one namespace through the Kubernetes API (any API server: the
    KServe client's helpers assume a Knative or Istio setup this platform does not need).

    Readiness is polled with GET, like the training launchers: a watch would need resuming
    after the server closes it, and gains nothing at a poll interval of seconds.
    """

    def __init__(self, api: k8s_client.ApiClient, namespace: str, *, timeout_s: float) -> None:
        self.api = api
        self.namespace = namespace
        self.timeout_s = timeout_s
        self.objects = k8s_client.CustomObjectsApi(api)
        self._resource = {"group": GROUP, "version": VERSION, "plural": PLURAL}

    def where(self, name: str) -> str:
        return f"InferenceService {self.namespace}/{name}"

    def get(self, name: str) -> Body | None:
        try:
            return self.objects.get_namespaced_custom_object(
                namespace=self.namespace,
                name=name,
                _request_timeout=self.timeout_s,
                **self._resource,
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise InferenceServiceError(
                f"could not read {self.where(name)}: {error.status} {error.reason}"
            ) from error

    def create(self, body: Body) -> Body:
        """Create with strict field validation: an unknown field is an error, not dropped."""
        try:
            return self.objects.create_namespaced_custom_object(
                namespace=self.namespace,
                body=body,
                field_validation="Strict",
                _request_timeout=self.timeout_s,
                **self._resource,
            )
        except ApiException as error:
            raise InferenceServiceError(
                f"could not create {self.where(body['metadata']['name'])}: {error.status} "
                f"{_message(error)}"
            ) from error

    def patch(self, name: str, operations: list[Body]) -> Body:
        """Apply a JSON patch; a failed ``test`` (someone else changed it) is refused."""
        try:
            return json_patch(self.api, self.namespace, name, operations, self.timeout_s)
        except ApiException as error:
            raise InferenceServiceError(
                f"could not patch {self.where(name)}: {error.status} {_message(error)} "
                "(changed by another rollout? check `kubectl get isvc -n "
                f"{self.namespace} {name} -o yaml`)"
            ) from error

    def wait_ready(
        self, name: str, version: str, *, canary: bool, timeout_s: float, poll_s: float
    ) -> Body:
        """Poll until ``version`` serves (see :func:`readiness`), or raise at ``timeout_s``."""
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            isvc = self.get(name)
            if isvc is None:
                raise InferenceServiceError(f"{self.where(name)} was deleted during the rollout")
            if canary and version not in canary_names(isvc):
                raise InferenceServiceError(
                    f"the canary {version} was removed from {self.where(name)} during the rollout"
                )
            ready, summary = readiness(isvc, version, canary=canary)
            failure = None if canary or ready else load_failure(isvc)
            if failure is not None:
                raise InferenceServiceError(
                    f"{version} of {self.where(name)} failed to load: {failure}; see "
                    f"`kubectl logs -n {self.namespace} -l serving.kserve.io/inferenceservice="
                    f"{name}`"
                )
            if ready:
                log.info(
                    "inference service ready",
                    extra={"isvc": self.where(name), "version": version, "canary": canary},
                )
                return isvc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InferenceServiceError(
                    f"{version} of {self.where(name)} was not ready after {timeout_s:.0f}s "
                    f"({summary}); see `kubectl describe isvc -n {self.namespace} {name}` "
                    "and raise serving.deployment.ready_timeout_s if loading takes longer"
                )
            time.sleep(min(poll_s, remaining))


def json_patch(
    api: k8s_client.ApiClient, namespace: str, name: str, operations: list[Body], timeout_s: float
) -> Body:
    """PATCH an InferenceService with ``application/json-patch+json``, strictly validated."""
    return api.call_api(
        "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}",
        "PATCH",
        path_params={
            "group": GROUP,
            "version": VERSION,
            "namespace": namespace,
            "plural": PLURAL,
            "name": name,
        },
        query_params=[("fieldValidation", "Strict")],
        header_params={
            "Accept": "application/json",
            "Content-Type": "application/json-patch+json",
        },
        body=operations,
        response_type="object",
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _preload_content=True,
        _request_timeout=timeout_s,
    )


def _message(error: ApiException) -> str:
    """The API server's own message (a Status object), else the HTTP reason."""
    try:
        return json.loads(error.body or "{}").get("message") or str(error.reason)
    except (ValueError, AttributeError):
        return str(error.reason)
