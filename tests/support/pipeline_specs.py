"""Read a compiled KFP pipeline (plain YAML or a ``PipelineVersion``) task by task.

Tests assert the cluster settings every task must carry; both the file ``kfp`` compiles and
the Kubernetes-native ``PipelineVersion`` hold the same two documents: the pipeline spec and
the Kubernetes platform spec (``platforms.kubernetes.deploymentSpec.executors``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskView:
    """What the cluster will do with one task, gathered from both documents."""

    name: str
    image: str
    resources: dict[str, Any]
    cached: bool
    retry: dict[str, Any] | None
    config_map_env: dict[str, dict[str, str]]
    secret_env: dict[str, dict[str, str]]


def dag_tasks(pipeline_spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every container task by name, those inside conditions (sub-DAGs) included."""
    found: dict[str, dict[str, Any]] = {}
    pending = [pipeline_spec["root"]["dag"]["tasks"]]
    while pending:
        for name, task in pending.pop().items():
            component = pipeline_spec["components"][task["componentRef"]["name"]]
            if "dag" in component:
                pending.append(component["dag"]["tasks"])
            else:
                found[name] = task
    return found


def tasks(pipeline_spec: dict[str, Any], platform_spec: dict[str, Any] | None) -> list[TaskView]:
    """Every container task with its executor's container and platform settings."""
    executors = pipeline_spec["deploymentSpec"]["executors"]
    platform = (
        (platform_spec or {}).get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
    ).get("executors", {})
    views = []
    for name, task in dag_tasks(pipeline_spec).items():
        executor_name = pipeline_spec["components"][task["componentRef"]["name"]]["executorLabel"]
        container = executors[executor_name]["container"]
        extra = platform.get(executor_name, {})
        views.append(
            TaskView(
                name=name,
                image=container["image"],
                resources=container.get("resources", {}),
                cached=task.get("cachingOptions", {}).get("enableCache", False),
                retry=task.get("retryPolicy"),
                config_map_env={
                    item["configMapName"]: {
                        e["configMapKey"]: e["envVar"] for e in item["keyToEnv"]
                    }
                    for item in extra.get("configMapAsEnv", [])
                },
                secret_env={
                    item["secretName"]: {e["secretKey"]: e["envVar"] for e in item["keyToEnv"]}
                    for item in extra.get("secretAsEnv", [])
                },
            )
        )
    return views


# The feature pipeline's tasks with side effects (never cached) and those that talk to
# services (retried), written out here rather than read from pipelines/platform.py so that
# a wrong profile there fails the tests.
FEATURE_SIDE_EFFECT_TASKS = {"crawl", "validate-documents", "plan-sync", "validate-chunks", "load"}
# Embed reads and writes the embedding cache in MinIO (retried) but stays cacheable.
FEATURE_SERVICE_TASKS = FEATURE_SIDE_EFFECT_TASKS | {"embed"}
# Every training step reads or publishes registry or dataset state; all but the launch retry.
TRAINING_SIDE_EFFECT_TASKS = {
    "base-model",
    "instruction-dataset",
    "preference-dataset",
    "train",
    "register",
}
TRAINING_SERVICE_TASKS = TRAINING_SIDE_EFFECT_TASKS - {"train"}
# llm-twin chains both, then evaluation and the review request (both retried); the promote
# pipeline's decision and deployment change state and are never retried.
LLM_TWIN_SIDE_EFFECT_TASKS = (
    FEATURE_SIDE_EFFECT_TASKS | TRAINING_SIDE_EFFECT_TASKS | {"evaluate-model", "request-review"}
)
LLM_TWIN_SERVICE_TASKS = (
    FEATURE_SERVICE_TASKS | TRAINING_SERVICE_TASKS | {"evaluate-model", "request-review"}
)
PROMOTE_SIDE_EFFECT_TASKS = {"decide-promotion", "deploy-model"}
PROMOTE_SERVICE_TASKS: set[str] = set()
RESOURCE_KEYS = {
    "resourceCpuRequest",
    "resourceCpuLimit",
    "resourceMemoryRequest",
    "resourceMemoryLimit",
}


def cluster_problems(
    views: list[TaskView],
    endpoints: dict[str, str],
    credentials: dict[str, str],
    side_effect_tasks: set[str],
    service_tasks: set[str],
) -> list[str]:
    """Each way a task would misbehave on a cluster, as one readable line."""
    problems = []
    for task in views:
        where = f"task {task.name}"
        if task.config_map_env.get("twin-endpoints") != {key: key for key in endpoints}:
            problems.append(f"{where}: twin-endpoints not injected as TWIN_* variables")
        if task.secret_env.get("twin-credentials") != {key: key for key in credentials}:
            problems.append(f"{where}: twin-credentials not injected as TWIN_* variables")
        if task.cached == (task.name in side_effect_tasks):
            problems.append(f"{where}: caching {'on' if task.cached else 'off'}")
        if not set(task.resources) >= RESOURCE_KEYS:
            problems.append(f"{where}: resources {sorted(task.resources)}")
        if (task.retry is not None) != (task.name in service_tasks):
            problems.append(f"{where}: retry policy {task.retry}")
        elif task.retry and not float(task.retry["backoffDuration"].rstrip("s")) > 0:
            problems.append(f"{where}: retries without backoff")
    return problems
