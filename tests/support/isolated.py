"""Settings for a private, throw-away stack: every port free on loopback, state in one dir.

Tests and benchmarks use it so they never touch a developer's running stack or data.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

from twin_lib.settings import MinioSettings, StackSettings, TwinSettings, WeaviateSettings
from twin_lib.stack import LocalStack


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_port_pair() -> int:
    """A free port whose successor is free too (Weaviate's Raft RPC listens on raft + 1)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of loopback ports")


def isolated_settings(state_dir: Path, base: TwinSettings | None = None) -> TwinSettings:
    """``base`` (default: built-in defaults) with fresh ports, credentials and state dir."""
    base = base or TwinSettings(_env_file=None)
    return base.model_copy(
        update={
            "minio": MinioSettings(
                endpoint=f"127.0.0.1:{free_port()}",
                access_key="twin-isolated",
                secret_key=SecretStr("twin-isolated-secret"),
                part_size_mb=5,
            ),
            "weaviate": WeaviateSettings(
                http_port=free_port(),
                grpc_port=free_port(),
                api_key=SecretStr("twin-isolated-weaviate-key"),
            ),
            "stack": StackSettings(
                state_dir=state_dir,
                cache_dir=base.stack.cache_dir,
                minio_binary=base.stack.minio_binary,
                weaviate_binary=base.stack.weaviate_binary,
                minio_console_port=free_port(),
                weaviate_gossip_port=free_port(),
                weaviate_data_port=free_port(),
                weaviate_raft_port=free_port_pair(),
            ),
        }
    )


def private_stores(settings: TwinSettings, collection_prefix: str = "T") -> TwinSettings:
    """Buckets and a collection of their own on a shared stack, so one test's exact counts
    and newest versions are not another's."""
    tag = uuid.uuid4().hex[:8]
    minio = settings.minio.model_copy(
        update={
            name: f"{name.removesuffix('_bucket')}-{tag}"
            for name in ("raw_bucket", "features_bucket", "datasets_bucket", "models_bucket")
        }
    )
    weaviate = settings.weaviate.model_copy(update={"collection": f"{collection_prefix}{tag}"})
    return settings.model_copy(update={"minio": minio, "weaviate": weaviate})


@contextmanager
def private_stack(state_dir: Path) -> Iterator[TwinSettings]:
    """A started throw-away stack in ``state_dir``, stopped (by PID) on exit."""
    settings = isolated_settings(state_dir)
    stack = LocalStack(settings)
    stack.up()
    try:
        yield settings
    finally:
        stack.down()
