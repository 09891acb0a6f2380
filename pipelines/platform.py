"""How every task of every compiled pipeline runs on the cluster, decided in one place.

A pipeline builds its graph and passes each task through :func:`for_cluster` with the
task's :class:`StepProfile` from :data:`STEP_PROFILES`. That one call gives the task:

- the endpoints of the ``twin-endpoints`` ConfigMap and the credentials of the
  ``twin-credentials`` Secret as the ``TWIN_*`` variables ``twin_lib.settings`` reads
  (``manifests/components/platform-env`` generates both; a test keeps the key lists equal);
- the components image from the settings *at compile time* (``TWIN_KFP__COMPONENTS_IMAGE``);
- caching only where a step is pure: a step with side effects (crawling, quarantine writes,
  reading the feature store's current state, loading) must run again on a nightly refresh
  whose inputs did not change;
- CPU and memory requests and limits, and retries with exponential backoff for steps that
  talk to services (a restarting MinIO or Weaviate should not fail the run).

Another pipeline (training, evaluation, deployment) reuses this by adding its steps to
``STEP_PROFILES`` (or passing its own ``StepProfile``) and calling ``for_cluster(task,
STEP_PROFILES["its-step"])`` on each task; a GPU step sets ``accelerator`` in its profile.
Under ``kfp.local`` these settings are recorded but not enforced: the subprocess runner
ignores the image, the platform spec, resources and retries.
"""

from __future__ import annotations

from kfp import dsl, kubernetes
from pydantic import BaseModel, ConfigDict, Field

from twin_lib.settings import KfpSettings, load_settings

ENDPOINTS_CONFIG_MAP = "twin-endpoints"
CREDENTIALS_SECRET = "twin-credentials"

# The keys of manifests/components/platform-env/endpoints.env and secrets/credentials.env;
# each key is the environment variable it becomes (tests/k8s/test_consistency.py compares).
ENDPOINT_KEYS: tuple[str, ...] = (
    "TWIN_MINIO__ENDPOINT",
    "TWIN_MINIO__SECURE",
    "TWIN_WEAVIATE__HTTP_HOST",
    "TWIN_WEAVIATE__HTTP_PORT",
    "TWIN_WEAVIATE__GRPC_HOST",
    "TWIN_WEAVIATE__GRPC_PORT",
    "TWIN_ARGILLA__URL",
    "TWIN_KFP__HOST",
    "TWIN_KFP__NAMESPACE",
    "TWIN_KFP__COMPONENTS_IMAGE",
    "TWIN_KUBERNETES__NAMESPACE",
    "TWIN_LOG_JSON",
)
CREDENTIAL_KEYS: tuple[str, ...] = (
    "TWIN_MINIO__ACCESS_KEY",
    "TWIN_MINIO__SECRET_KEY",
    "TWIN_WEAVIATE__API_KEY",
    "TWIN_ARGILLA__API_KEY",
)


class Resources(BaseModel):
    """Kubernetes CPU and memory requests and limits of one task."""

    model_config = ConfigDict(frozen=True)

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


# Streaming steps read and write JSON lines a record at a time; Great Expectations and the
# tokenizer hold a whole file's frame; embed holds the model and batches of chunks.
STREAMING = Resources(cpu_request="250m", cpu_limit="1", memory_request="512Mi", memory_limit="1Gi")
FRAMES = Resources(cpu_request="500m", cpu_limit="1", memory_request="1Gi", memory_limit="2Gi")
MODEL = Resources(cpu_request="2", cpu_limit="4", memory_request="4Gi", memory_limit="8Gi")


class StepProfile(BaseModel):
    """What one kind of step needs from the cluster."""

    model_config = ConfigDict(frozen=True)

    resources: Resources
    side_effects: bool = Field(
        description="writes or reads changing state outside its inputs: never from cache"
    )
    uses_services: bool = Field(description="talks to MinIO, Weaviate or the web: retried")
    accelerator: str | None = Field(
        default=None, description="e.g. nvidia.com/gpu; one per task when set"
    )


def _step(resources: Resources, *, side_effects: bool) -> StepProfile:
    """Steps here touch services exactly when they have side effects."""
    return StepProfile(resources=resources, side_effects=side_effects, uses_services=side_effects)


STEP_PROFILES: dict[str, StepProfile] = {
    "crawl": _step(FRAMES, side_effects=True),
    "validate-documents": _step(FRAMES, side_effects=True),
    "plan-sync": _step(STREAMING, side_effects=True),
    "clean": _step(STREAMING, side_effects=False),
    "chunk": _step(FRAMES, side_effects=False),
    # Embed reads and writes the embedding cache in MinIO (so it is retried), but its output
    # depends only on its inputs and the encoder: a result from KFP's cache is still right.
    "embed": StepProfile(resources=MODEL, side_effects=False, uses_services=True),
    "validate-chunks": _step(FRAMES, side_effects=True),
    "load": _step(STREAMING, side_effects=True),
    # Training: each step reads or publishes registry and dataset state. The train step only
    # launches and watches a PyTorchJob/TrainJob (the GPUs are the job's); it is not retried,
    # since a retry would train a second version after a failure the job already reported.
    "base-model": _step(MODEL, side_effects=True),
    "instruction-dataset": _step(FRAMES, side_effects=True),
    "preference-dataset": _step(MODEL, side_effects=True),
    "train": StepProfile(resources=STREAMING, side_effects=True, uses_services=False),
    "register": _step(STREAMING, side_effects=True),
    # Serving: changes the cluster's InferenceService and the registry. Not retried: a
    # retry after a failed canary check would roll the same version out again.
    "deploy-model": StepProfile(resources=STREAMING, side_effects=True, uses_services=False),
    # Evaluation: loads the candidate and its base (generation, perplexity) and the embedding
    # model; writes its results beside the version. A retry rewrites the same files.
    "evaluate-model": _step(MODEL, side_effects=True),
    # Promotion gate: request-review sends samples (idempotent per version and sample, so
    # retried); decide-promotion records approve or reject, and a retry after a recorded
    # decision would move on to another candidate (or none), so it is not retried.
    "request-review": _step(STREAMING, side_effects=True),
    "decide-promotion": StepProfile(resources=STREAMING, side_effects=True, uses_services=False),
}

RETRIES = 3
RETRY_BACKOFF = "30s"
RETRY_BACKOFF_FACTOR = 2.0
RETRY_BACKOFF_MAX = "600s"


def for_cluster(
    task: dsl.PipelineTask,
    profile: StepProfile | None = None,
    kfp_settings: KfpSettings | None = None,
) -> dsl.PipelineTask:
    """Give ``task`` the platform's environment, image, caching, resources and retries.

    ``profile`` defaults to the entry of ``STEP_PROFILES`` named like the task (its
    component's name). ``kfp_settings`` defaults to the settings read now, so compiling with
    ``TWIN_KFP__COMPONENTS_IMAGE`` set puts that image into the compiled pipeline.
    """
    if profile is None:
        if task.name not in STEP_PROFILES:
            raise KeyError(
                f"no step profile for task {task.name!r}: add it to STEP_PROFILES in "
                "pipelines/platform.py or pass a StepProfile"
            )
        profile = STEP_PROFILES[task.name]
    image = (kfp_settings or load_settings().kfp).components_image
    # Each task owns a copy of its component's container spec; KFP has no setter for it.
    task.container_spec.image = image
    kubernetes.use_config_map_as_env(
        task, ENDPOINTS_CONFIG_MAP, {key: key for key in ENDPOINT_KEYS}
    )
    kubernetes.use_secret_as_env(task, CREDENTIALS_SECRET, {key: key for key in CREDENTIAL_KEYS})
    task.set_caching_options(enable_caching=not profile.side_effects)
    resources = profile.resources
    task.set_cpu_request(resources.cpu_request).set_cpu_limit(resources.cpu_limit)
    task.set_memory_request(resources.memory_request).set_memory_limit(resources.memory_limit)
    if profile.accelerator:
        task.set_accelerator_type(profile.accelerator).set_accelerator_limit(1)
    if profile.uses_services:
        task.set_retry(
            num_retries=RETRIES,
            backoff_duration=RETRY_BACKOFF,
            backoff_factor=RETRY_BACKOFF_FACTOR,
            backoff_max_duration=RETRY_BACKOFF_MAX,
        )
    return task
