"""Training runs on Kubernetes: a PyTorchJob (kubeflow.org/v1) or a Kubeflow Trainer v2
TrainJob (trainer.kubeflow.org/v1alpha1), built, created, watched to the end and cleaned up.

The public KFP launchers wait with the API timeout instead of the job's and compare a
condition string with condition objects, so a failed job can pass as done. Here the job's
own deadline bounds the wait, and success is one condition of the success type whose status
is the string ``"True"``; a ``Failed`` condition, a deleted job or the deadline raise, with
the operator's reason and message.
"""

from __future__ import annotations

import copy
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel

from twin_lib.settings import ClusterJobSettings, KubernetesSettings

log = logging.getLogger(__name__)

# One run's placement: the settings group with this run's overrides applied.
ClusterJobSpec = ClusterJobSettings

TRAIN_MODULE = "twin_lib.training.train"
CONTAINER = "pytorch"
TRAINJOB_CONTAINER = "node"
TRAINJOB_TARGET = "node"
CACHE_VOLUME = "cache"
GPU = "nvidia.com/gpu"
PART_OF = {"app.kubernetes.io/part-of": "llm-twin", "app.kubernetes.io/component": "training"}
RUN_LABEL = "llm-twin.dev/run-name"
Body = dict[str, Any]


class TrainingJobError(RuntimeError):
    """A cluster training job failed, vanished or ran past its deadline."""


class TrainingJobFailedError(TrainingJobError):
    """The operator marked the job failed; the message carries its reason."""


class TrainingJobTimeoutError(TrainingJobError):
    """The job had not ended when its deadline passed."""


@dataclass(frozen=True)
class JobKind:
    """What the launcher needs to know about one job CRD."""

    group: str
    version: str
    plural: str
    kind: str
    success_condition: str
    # Label selector of the first node's pod, whose logs are streamed; {name} = job name.
    lead_pod_selector: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def resource(self) -> dict[str, str]:
        return {"group": self.group, "version": self.version, "plural": self.plural}


PYTORCHJOB = JobKind(
    "kubeflow.org",
    "v1",
    "pytorchjobs",
    "PyTorchJob",
    "Succeeded",
    "training.kubeflow.org/job-name={name},training.kubeflow.org/replica-type=master",
)
# Condition types from kubeflow/trainer pkg/apis/trainer/v1alpha1/trainjob_types.go; the
# lead pod is JobSet's replicated job "node", index 0.
TRAINJOB = JobKind(
    "trainer.kubeflow.org",
    "v1alpha1",
    "trainjobs",
    "TrainJob",
    "Complete",
    "jobset.sigs.k8s.io/jobset-name={name},jobset.sigs.k8s.io/replicatedjob-name=node,"
    "batch.kubernetes.io/job-completion-index=0",
)
FAILED = "Failed"


class JobOutcome(BaseModel):
    """How a job ended, as the operator reported it."""

    name: str
    namespace: str
    kind: str
    condition: str
    reason: str = ""
    message: str = ""
    duration_s: float


def api_client(settings: KubernetesSettings) -> k8s_client.ApiClient:
    """A client from the configured kubeconfig, else the pod's own account, else ~/.kube."""
    configuration = k8s_client.Configuration()
    if settings.kubeconfig is not None:
        k8s_config.load_kube_config(str(settings.kubeconfig), client_configuration=configuration)
    else:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            k8s_config.load_kube_config(client_configuration=configuration)
    return k8s_client.ApiClient(configuration)


def job_name(run_name: str, *, now: datetime | None = None) -> str:
    """A fresh DNS-1123 name, short enough for the pod and service names derived from it."""
    slug = re.sub(r"[^a-z0-9-]+", "-", run_name.lower()).strip("-")[:24].strip("-") or "twin"
    stamp = (now or datetime.now(UTC)).strftime("%m%d%H%M")
    return f"{slug}-{stamp}-{secrets.token_hex(2)}"


def train_command(config_json: str) -> list[str]:
    """torchrun on every node; the operators set its PET_* rendezvous variables."""
    return ["torchrun", "--module", TRAIN_MODULE, "--", "--config", config_json]


def processes_per_node(spec: ClusterJobSpec) -> int:
    return spec.gpus_per_node or spec.processes_per_node


def _resources(spec: ClusterJobSpec, base: Body | None = None) -> Body:
    resources = copy.deepcopy(base or {})
    for side in ("requests", "limits"):
        values = resources.setdefault(side, {})
        if spec.cpu:
            values["cpu"] = spec.cpu
        if spec.memory:
            values["memory"] = spec.memory
        if spec.gpus_per_node:
            values[GPU] = spec.gpus_per_node
        else:
            values.pop(GPU, None)
        if not values:
            resources.pop(side)
    return resources


def _cache_volume(spec: ClusterJobSpec) -> Body:
    if spec.cache_pvc:
        return {"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": spec.cache_pvc}}
    return {"name": CACHE_VOLUME, "emptyDir": {"sizeLimit": "50Gi"}}


# Used when the suspended defaults object cannot be read: the same restricted pod as
# manifests/base/pytorchjob.yaml, without the overlays' sizing.
BUILTIN_POD: Body = {
    "metadata": {"labels": {"app.kubernetes.io/name": "trainer"}},
    "spec": {
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": CONTAINER,
                "env": [
                    {"name": "HOME", "value": "/tmp"},
                    {"name": "HF_HOME", "value": "/cache/huggingface"},
                ],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": CACHE_VOLUME, "mountPath": "/cache"},
                    {"name": "dshm", "mountPath": "/dev/shm"},
                ],
            }
        ],
        "volumes": [
            {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},
            {"name": CACHE_VOLUME, "emptyDir": {"sizeLimit": "50Gi"}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
        ],
    },
}
BUILTIN_PYTORCHJOB: Body = {
    "apiVersion": PYTORCHJOB.api_version,
    "kind": PYTORCHJOB.kind,
    "metadata": {"name": "builtin-defaults"},
    "spec": {
        "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 2},
        "pytorchReplicaSpecs": {
            role: {"replicas": 1, "restartPolicy": "OnFailure", "template": BUILTIN_POD}
            for role in ("Master", "Worker")
        },
    },
}


def read_defaults(
    objects: k8s_client.CustomObjectsApi, namespace: str, spec: ClusterJobSpec
) -> Body:
    """The suspended defaults PyTorchJob the overlays sized, or the built-in one if absent."""
    try:
        return objects.get_namespaced_custom_object(
            namespace=namespace,
            name=spec.defaults_job,
            _request_timeout=spec.api_timeout_s,
            **PYTORCHJOB.resource(),
        )
    except ApiException as error:
        if error.status not in (403, 404):
            raise
        log.warning(
            "PyTorchJob defaults not readable: using the built-in pod template; apply the "
            "manifests (kubectl apply -k manifests/overlays/<env>) to size jobs per cluster",
            extra={"defaults": f"{namespace}/{spec.defaults_job}", "status": error.status},
        )
        return copy.deepcopy(BUILTIN_PYTORCHJOB)


def _fill_container(container: Body, spec: ClusterJobSpec, command: list[str]) -> None:
    container["image"] = spec.image
    container["command"] = command
    container.pop("args", None)
    container["resources"] = _resources(spec, container.get("resources"))
    refs = container.setdefault("envFrom", [])
    wanted = [
        {"configMapRef": {"name": spec.endpoints_configmap}},
        {"secretRef": {"name": spec.credentials_secret}},
    ]
    refs.extend(ref for ref in wanted if ref not in refs)


def _fill_pod(template: Body, spec: ClusterJobSpec, command: list[str], labels: Body) -> None:
    template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    pod = template["spec"]
    pod["serviceAccountName"] = spec.service_account
    containers = pod["containers"]
    (container,) = [c for c in containers if c["name"] == CONTAINER] or containers[:1]
    _fill_container(container, spec, command)
    if spec.node_selector:
        pod["nodeSelector"] = {**pod.get("nodeSelector", {}), **spec.node_selector}
    if spec.tolerations:
        present = pod.get("tolerations", [])
        pod["tolerations"] = [*present, *(t for t in spec.tolerations if t not in present)]
    volumes = [v for v in pod.get("volumes", []) if v["name"] != CACHE_VOLUME]
    pod["volumes"] = [*volumes, _cache_volume(spec)]


def pytorchjob_body(
    defaults: Body, spec: ClusterJobSpec, *, name: str, namespace: str, config_json: str
) -> Body:
    """A fresh, unsuspended PyTorchJob: the defaults' pod, this run's command and placement."""
    labels = {**PART_OF, RUN_LABEL: name}
    job_spec = copy.deepcopy(defaults["spec"])
    job_spec.setdefault("runPolicy", {})["suspend"] = False
    job_spec["nprocPerNode"] = str(processes_per_node(spec))
    replicas = job_spec["pytorchReplicaSpecs"]
    worker_template = replicas.get("Worker", replicas["Master"])["template"]
    replicas["Master"]["replicas"] = 1
    if spec.nodes > 1:
        replicas["Worker"] = {
            **replicas.get("Worker", {"restartPolicy": "OnFailure"}),
            "replicas": spec.nodes - 1,
            "template": worker_template,
        }
    else:
        replicas.pop("Worker", None)
    command = train_command(config_json)
    for replica in replicas.values():
        # Each replica its own pod: YAML anchors and the built-in defaults share one.
        replica["template"] = copy.deepcopy(replica["template"])
        _fill_pod(replica["template"], spec, command, labels)
    return {
        "apiVersion": PYTORCHJOB.api_version,
        "kind": PYTORCHJOB.kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": job_spec,
    }


def _env_from_keys(spec: ClusterJobSpec) -> list[Body]:
    def entry(key: str, source: str, name: str) -> Body:
        return {"name": key, "valueFrom": {source: {"name": name, "key": key, "optional": True}}}

    return [
        *(entry(k, "configMapKeyRef", spec.endpoints_configmap) for k in spec.endpoint_keys),
        *(entry(k, "secretKeyRef", spec.credentials_secret) for k in spec.credential_keys),
    ]


def trainjob_body(spec: ClusterJobSpec, *, name: str, namespace: str, config_json: str) -> Body:
    """A TrainJob on the configured runtime with a custom trainer (image, command, nodes)."""
    labels = {**PART_OF, RUN_LABEL: name}
    override: Body = {
        "targetJobs": [{"name": TRAINJOB_TARGET}],
        "serviceAccountName": spec.service_account,
        "volumes": [_cache_volume(spec)],
        "containers": [
            {
                "name": TRAINJOB_CONTAINER,
                "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": "/cache"}],
            }
        ],
    }
    if spec.node_selector:
        override["nodeSelector"] = spec.node_selector
    if spec.tolerations:
        override["tolerations"] = spec.tolerations
    trainer: Body = {
        "image": spec.image,
        "command": train_command(config_json),
        "numNodes": spec.nodes,
        "numProcPerNode": processes_per_node(spec),
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "HF_HOME", "value": "/cache/huggingface"},
            *_env_from_keys(spec),
        ],
    }
    resources = _resources(spec)
    if resources:
        trainer["resourcesPerNode"] = resources
    return {
        "apiVersion": TRAINJOB.api_version,
        "kind": TRAINJOB.kind,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "runtimeRef": {
                "apiGroup": TRAINJOB.group,
                "kind": spec.runtime_kind,
                "name": spec.runtime,
            },
            "trainer": trainer,
            "labels": labels,
            "podSpecOverrides": [override],
        },
    }


def ended(kind: JobKind, job: Body) -> tuple[str, str, str] | None:
    """``(condition, reason, message)`` once the job has succeeded or failed, else None.

    Statuses are strings: only ``"True"`` counts, so a ``Succeeded`` condition with status
    ``"False"`` (or a Failed one the operator has since cleared) is not an end.
    """
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in (
            kind.success_condition,
            FAILED,
        ):
            return condition["type"], condition.get("reason", ""), condition.get("message", "")
    return None


class LogFollower:
    """Streams the lead pod's log into this process's log once the pod exists (best effort:
    a launcher without log access, or a pod that is gone, only costs the log)."""

    def __init__(self, core: k8s_client.CoreV1Api, namespace: str, selector: str) -> None:
        self._core = core
        self._namespace = namespace
        self._selector = selector
        self._thread: threading.Thread | None = None

    def poll(self) -> None:
        if self._thread is not None:
            return
        try:
            pods = self._core.list_namespaced_pod(
                self._namespace, label_selector=self._selector, _request_timeout=10
            ).items
        except ApiException as error:
            log.debug("pod listing failed", extra={"status": error.status})
            return
        running = [p for p in pods if p.status and p.status.phase in ("Running", "Succeeded")]
        if running:
            pod = running[0].metadata.name
            self._thread = threading.Thread(target=self._follow, args=(pod,), daemon=True)
            self._thread.start()

    def _follow(self, pod: str) -> None:
        try:
            stream = self._core.read_namespaced_pod_log(
                pod, self._namespace, follow=True, _preload_content=False
            )
            for line in stream:
                log.info("[%s] %s", pod, line.decode("utf-8", "replace").rstrip())
        except Exception as error:  # log streaming must never fail the run
            log.info("log stream of %s ended: %s", pod, error)
        else:
            log.info("log stream of %s ended", pod)


def wait_for_job(
    objects: k8s_client.CustomObjectsApi,
    kind: JobKind,
    namespace: str,
    name: str,
    spec: ClusterJobSpec,
    *,
    on_poll: Callable[[], None] | None = None,
) -> JobOutcome:
    """Poll until the job succeeds (return) or fails, vanishes or outlives ``timeout_s``."""
    started = time.monotonic()
    deadline = started + spec.timeout_s
    where = f"{kind.kind} {namespace}/{name}"
    last_log = started
    while True:
        try:
            job = objects.get_namespaced_custom_object(
                namespace=namespace,
                name=name,
                _request_timeout=spec.api_timeout_s,
                **kind.resource(),
            )
        except ApiException as error:
            if error.status == 404:
                raise TrainingJobFailedError(f"{where} was deleted while it ran") from error
            raise
        end = ended(kind, job)
        elapsed = time.monotonic() - started
        if end is not None:
            condition, reason, message = end
            if condition == FAILED:
                raise TrainingJobFailedError(
                    f"{where} failed after {elapsed:.0f}s: {reason or 'no reason'}: "
                    f"{message or 'no message'} (kubectl describe {kind.plural} -n "
                    f"{namespace} {name}; logs: kubectl logs -n {namespace} -l "
                    f"{kind.lead_pod_selector.format(name=name)})"
                )
            return JobOutcome(
                name=name,
                namespace=namespace,
                kind=kind.kind,
                condition=condition,
                reason=reason,
                message=message,
                duration_s=elapsed,
            )
        if time.monotonic() >= deadline:
            raise TrainingJobTimeoutError(
                f"{where} had not finished after its timeout of {spec.timeout_s:.0f}s "
                f"(conditions: {_condition_summary(job)}); raise training.cluster.timeout_s "
                "if it needs longer"
            )
        if on_poll is not None:
            on_poll()
        if time.monotonic() - last_log >= 60:
            last_log = time.monotonic()
            log.info("waiting for %s", where, extra={"elapsed_s": round(elapsed)})
        time.sleep(min(spec.poll_interval_s, max(deadline - time.monotonic(), 0.0)))


def _condition_summary(job: Body) -> str:
    conditions = job.get("status", {}).get("conditions") or []
    return ", ".join(f"{c.get('type')}={c.get('status')}" for c in conditions) or "none"


def run_job(
    api: k8s_client.ApiClient, kind: JobKind, body: Body, spec: ClusterJobSpec
) -> JobOutcome:
    """Create the job, stream its lead pod's log, wait for its end, delete it if asked."""
    objects = k8s_client.CustomObjectsApi(api)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    # Strict: a field the installed CRD does not know is an error, not silently dropped.
    objects.create_namespaced_custom_object(
        namespace=namespace,
        body=body,
        field_validation="Strict",
        _request_timeout=spec.api_timeout_s,
        **kind.resource(),
    )
    log.info(
        "created training job",
        extra={"kind": kind.kind, "job": f"{namespace}/{name}", "timeout_s": spec.timeout_s},
    )
    follower = (
        LogFollower(k8s_client.CoreV1Api(api), namespace, kind.lead_pod_selector.format(name=name))
        if spec.stream_logs
        else None
    )
    try:
        outcome = wait_for_job(
            objects, kind, namespace, name, spec, on_poll=follower.poll if follower else None
        )
    finally:
        if spec.delete_after:
            delete_job(objects, kind, namespace, name, spec)
    log.info(
        "training job succeeded",
        extra={"job": f"{namespace}/{name}", "duration_s": round(outcome.duration_s)},
    )
    return outcome


def delete_job(
    objects: k8s_client.CustomObjectsApi,
    kind: JobKind,
    namespace: str,
    name: str,
    spec: ClusterJobSpec,
) -> None:
    """Delete the job now; the garbage collector removes its pods and services after
    (background propagation). A job already gone is fine."""
    try:
        objects.delete_namespaced_custom_object(
            namespace=namespace,
            name=name,
            body=k8s_client.V1DeleteOptions(propagation_policy="Background"),
            _request_timeout=spec.api_timeout_s,
            **kind.resource(),
        )
        log.info("deleted training job", extra={"job": f"{namespace}/{name}"})
    except ApiException as error:
        if error.status != 404:
            raise
