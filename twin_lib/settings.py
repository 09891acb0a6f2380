"""One settings object for every endpoint, credential and path the platform uses.

Configuration flows one way: CLI flags / pipeline parameters -> ``TwinSettings`` -> functions.
This is the only module that reads environment variables (prefix ``TWIN_``, nested groups
separated by ``__``, e.g. ``TWIN_MINIO__ENDPOINT``) and the optional ``.env`` file.
Secrets are ``SecretStr`` so they never end up in logs or reprs.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from twin_lib.features.config import FeaturesSettings

APP_NAME = "llm-twin"


class MinioSettings(BaseModel):
    """The S3-compatible object store holding the raw lake, datasets and models."""

    endpoint: str = "127.0.0.1:9000"
    access_key: str = "twin-admin"
    secret_key: SecretStr = SecretStr("twin-admin-secret")
    secure: bool = False
    region: str | None = None
    raw_bucket: str = "twin-raw"
    features_bucket: str = "twin-features"
    datasets_bucket: str = "twin-datasets"
    models_bucket: str = "twin-models"
    part_size_mb: int = Field(default=16, ge=5, description="multipart part size")

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    @property
    def buckets(self) -> tuple[str, ...]:
        return (self.raw_bucket, self.features_bucket, self.datasets_bucket, self.models_bucket)


class WeaviateSettings(BaseModel):
    """The vector database that serves as the feature store for chunks and embeddings."""

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    secure: bool = False
    api_key: SecretStr | None = SecretStr("twin-local-weaviate-key")
    collection: str = "TwinChunk"
    timeout_s: float = 30.0

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.http_host}:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"

    @property
    def endpoint_label(self) -> str:
        return f"{self.url} (gRPC {self.grpc_endpoint})"


class ArgillaSettings(BaseModel):
    """The human-review server where generated samples are labelled."""

    url: str = "http://127.0.0.1:6900"
    api_key: SecretStr = SecretStr("twin-local-argilla-key")
    workspace: str = "twin"


class KfpSettings(BaseModel):
    """Where pipelines are submitted when they do not run locally."""

    host: str | None = None
    namespace: str = "kubeflow"
    components_image: str = "ghcr.io/llm-twin/components:0.1.0"


class KubernetesSettings(BaseModel):
    """The namespace the platform's jobs and inference services live in."""

    namespace: str = "llm-twin"
    kubeconfig: Path | None = None


class StackSettings(BaseModel):
    """The local development stack: real MinIO and Weaviate servers run as processes.

    Ports other than the public HTTP/gRPC ones are the servers' internal listeners
    (MinIO console, Weaviate gossip/data/raft); they are settings so that several stacks,
    such as a developer's and the test suite's, can run side by side.
    """

    state_dir: Path = Field(default_factory=lambda: platformdirs.user_data_path(APP_NAME))
    cache_dir: Path = Field(default_factory=lambda: platformdirs.user_cache_path(APP_NAME))
    minio_binary: Path | None = None
    weaviate_binary: Path | None = None
    minio_module_version: str = "v0.0.0-20260212201848-7aac2a2c5b7c"
    weaviate_module_version: str = "v1.39.0"
    minio_console_port: int = 9001
    weaviate_gossip_port: int = 7946
    weaviate_data_port: int = 7947
    weaviate_raft_port: int = Field(
        default=8300, description="Raft consensus port; its internal RPC listener uses the next one"
    )
    start_timeout_s: float = 90.0
    stop_timeout_s: float = 20.0


class TwinSettings(BaseSettings):
    """Everything configurable in the platform, grouped by the system it talks to."""

    model_config = SettingsConfigDict(
        env_prefix="TWIN_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    minio: MinioSettings = Field(default_factory=MinioSettings)
    weaviate: WeaviateSettings = Field(default_factory=WeaviateSettings)
    argilla: ArgillaSettings = Field(default_factory=ArgillaSettings)
    kfp: KfpSettings = Field(default_factory=KfpSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    features: FeaturesSettings = Field(default_factory=FeaturesSettings)
    log_level: str = "INFO"
    log_json: bool = False


def load_settings(**overrides: object) -> TwinSettings:
    """Read settings from the environment and ``.env``; keyword overrides win (CLI flags)."""
    return TwinSettings(**overrides)


def to_env(settings: TwinSettings) -> dict[str, str]:
    """The ``TWIN_*`` variables that reproduce ``settings`` in a child process.

    Local pipeline runs and CLI subprocesses get their configuration this way, exactly as
    pods get it from ConfigMaps and Secrets on the cluster.
    """
    env: dict[str, str] = {}

    def flatten(prefix: str, model: BaseModel) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            key = f"{prefix}{name.upper()}"
            if isinstance(value, BaseModel):
                flatten(f"{key}__", value)
            elif isinstance(value, SecretStr):
                env[key] = value.get_secret_value()
            elif isinstance(value, bool):
                env[key] = "true" if value else "false"
            elif value is not None:
                env[key] = str(value)

    flatten("TWIN_", settings)
    return env
