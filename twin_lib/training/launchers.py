"""One interface for starting a training run, wherever it runs.

``settings.training.launcher`` picks the backend: ``local`` (torchrun on this machine),
``pytorchjob`` (Kubeflow training operator v1) or ``trainjob`` (Kubeflow Trainer v2), so a
cluster with either operator works. Every backend runs the same entry point with the same
``TrainingConfig``, returns a ``LaunchResult`` when the run succeeded and raises otherwise:
a failed run must fail the pipeline step.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

from kubernetes import client as k8s_client
from pydantic import BaseModel, Field

from twin_lib.k8s import training_jobs
from twin_lib.k8s.training_jobs import ClusterJobSpec
from twin_lib.settings import TwinSettings
from twin_lib.training.config import TrainingConfig

log = logging.getLogger(__name__)

Backend = Literal["local", "pytorchjob", "trainjob"]
ApiFactory = Callable[[], k8s_client.ApiClient]


class LocalSpec(BaseModel):
    """A run on this machine: torchrun with this many processes (CPU, gloo)."""

    processes: int = Field(default=2, ge=1)
    timeout_s: float = Field(default=3600.0, gt=0)


class LaunchResult(BaseModel):
    """A finished, successful run: where it ran, how long it took, where its outputs are."""

    backend: Backend
    output_uri: str
    duration_s: float
    job_name: str | None = None
    namespace: str | None = None
    condition: str | None = Field(default=None, description="the operator's success condition")
    job_spec: dict[str, Any] | None = Field(
        default=None, description="the object created on the cluster, as sent"
    )
    details: dict[str, Any] = Field(
        default_factory=dict, description="what the local trainer reported"
    )

    def write_job_spec(self, path: Path) -> Path:
        """The created object as JSON (a KFP output artifact); ``{}`` for a local run."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.job_spec or {}, indent=2, sort_keys=True) + "\n")
        return path


class Launcher(Protocol):
    def launch(self, config: TrainingConfig, spec: Any) -> LaunchResult: ...


class LocalLauncher:
    """torchrun on this machine through the trainer's own local launcher (CPU, gloo)."""

    def __init__(self, settings: TwinSettings) -> None:
        self.settings = settings

    def launch(self, config: TrainingConfig, spec: LocalSpec) -> LaunchResult:
        # Imported here: the cluster backends run where torch need not be installed.
        from twin_lib.training.local_launch import run_local

        started = time.monotonic()
        result = run_local(config, spec.processes, settings=self.settings, timeout_s=spec.timeout_s)
        details = result.model_dump(mode="json")
        return LaunchResult(
            backend="local",
            output_uri=config.output_uri,
            duration_s=time.monotonic() - started,
            details=details,
        )


class ClusterLauncher:
    """A PyTorchJob or a TrainJob in the platform's namespace, watched to its end."""

    def __init__(self, backend: Backend, namespace: str, api_factory: ApiFactory) -> None:
        if backend not in ("pytorchjob", "trainjob"):
            raise ValueError(f"{backend!r} is not a cluster backend (pytorchjob or trainjob)")
        self.backend: Backend = backend
        self.namespace = namespace
        self._api_factory = api_factory

    def body(self, api: k8s_client.ApiClient, config: TrainingConfig, spec: ClusterJobSpec) -> dict:
        """The object this launcher would create for ``config`` (without creating it)."""
        namespace = spec.namespace or self.namespace
        name = training_jobs.job_name(config.run_name)
        config_json = config.model_dump_json()
        if self.backend == "trainjob":
            return training_jobs.trainjob_body(
                spec, name=name, namespace=namespace, config_json=config_json
            )
        defaults = training_jobs.read_defaults(k8s_client.CustomObjectsApi(api), namespace, spec)
        return training_jobs.pytorchjob_body(
            defaults, spec, name=name, namespace=namespace, config_json=config_json
        )

    def launch(self, config: TrainingConfig, spec: ClusterJobSpec) -> LaunchResult:
        kind = training_jobs.TRAINJOB if self.backend == "trainjob" else training_jobs.PYTORCHJOB
        with self._api_factory() as api:
            body = self.body(api, config, spec)
            outcome = training_jobs.run_job(api, kind, body, spec)
        return LaunchResult(
            backend=self.backend,
            output_uri=config.output_uri,
            duration_s=outcome.duration_s,
            job_name=outcome.name,
            namespace=outcome.namespace,
            condition=outcome.condition,
            job_spec=body,
        )


def launcher_for(
    settings: TwinSettings, api_factory: ApiFactory | None = None
) -> tuple[Launcher, LocalSpec | ClusterJobSpec]:
    """The configured backend and its default spec (a run may override the spec's fields)."""
    backend = settings.training.launcher
    if backend == "local":
        spec = LocalSpec(
            processes=settings.training.local_processes,
            timeout_s=settings.training.local_timeout_s,
        )
        return LocalLauncher(settings), spec
    factory = api_factory or (lambda: training_jobs.api_client(settings.kubernetes))
    cluster = settings.training.cluster
    launcher = ClusterLauncher(backend, settings.kubernetes.namespace, factory)  # type: ignore[arg-type]
    return launcher, cluster.model_copy(deep=True)
