"""How each local service is launched: command line, environment, ports and health URL.

The plans mirror the cluster manifests' configuration (API-key auth on Weaviate, root
credentials on MinIO from settings, no Weaviate vectorizer modules), so code that works
against the local stack works against the cluster.

Every listener is bound to loopback except two of Weaviate's, which the server binds to all
interfaces with no option to change it (v1.39: ``net.Listen("tcp", ":<port>")``): the public
gRPC port, which answers only requests that carry the API key, and the internal data port
(cluster API), which is given HTTP basic-auth credentials generated once per state directory.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import BaseModel, Field

from twin_lib.settings import TwinSettings

WEAVIATE_NODE = "twin-local"
CLUSTER_USER = "twin-cluster"


class ServicePlan(BaseModel):
    name: str
    binary: Path
    args: list[str]
    env: dict[str, str]
    data_dir: Path
    endpoint: str
    ready_url: str | None = Field(
        description="HTTP URL answering 200 when ready, or tcp://host:port that accepts "
        "connections; None: ready once it stays up (a worker with no listener)"
    )
    ports: dict[str, int]
    version: str | None = Field(default=None, description="when known without asking it")
    needs: list[str] = Field(
        default_factory=list, description="services that must be ready before it starts"
    )
    prepare: list[list[str]] = Field(
        default_factory=list, description="idempotent commands run (with env) before start"
    )


def _host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


def cluster_credentials(state_dir: Path) -> tuple[str, str]:
    """User and password that guard Weaviate's internal data port, created on first use.

    The port serves stored objects to anyone who can connect unless the cluster API has
    credentials; a secret of this state directory, readable only by its owner, means no
    default password is ever published.
    """
    path = state_dir / "secrets" / "weaviate-cluster-password"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return CLUSTER_USER, path.read_text().strip()
    password = secrets.token_urlsafe(32)
    with os.fdopen(descriptor, "w") as out:
        out.write(password)
    return CLUSTER_USER, password


def minio_plan(settings: TwinSettings, binary: Path) -> ServicePlan:
    host, port = _host_port(settings.minio.endpoint)
    console = settings.stack.minio_console_port
    data_dir = settings.stack.state_dir / "data" / "minio"
    return ServicePlan(
        name="minio",
        binary=binary,
        args=[
            "server",
            str(data_dir),
            "--address",
            f"{host}:{port}",
            "--console-address",
            f"{host}:{console}",
            "--quiet",
        ],
        env={
            "MINIO_ROOT_USER": settings.minio.access_key,
            "MINIO_ROOT_PASSWORD": settings.minio.secret_key.get_secret_value(),
            "MINIO_UPDATE": "off",
            "MINIO_BROWSER_REDIRECT": "off",
        },
        data_dir=data_dir,
        endpoint=settings.minio.url,
        ready_url=f"{settings.minio.url}/minio/health/ready",
        ports={"s3": port, "console": console},
    )


def weaviate_plan(settings: TwinSettings, binary: Path) -> ServicePlan:
    """Weaviate as a single-node cluster with API-key authentication.

    REST, gossip and Raft are bound to loopback; gRPC and the data port cannot be (see the
    module docstring) and require the API key and the cluster credentials respectively.
    """
    weaviate, stack = settings.weaviate, settings.stack
    data_dir = stack.state_dir / "data" / "weaviate"
    raft = stack.weaviate_raft_port
    cluster_user, cluster_password = cluster_credentials(stack.state_dir)
    env = {
        "PERSISTENCE_DATA_PATH": str(data_dir),
        "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "false",
        "DEFAULT_VECTORIZER_MODULE": "none",
        "ENABLE_MODULES": "",
        "CLUSTER_HOSTNAME": WEAVIATE_NODE,
        "CLUSTER_IN_LOCALHOST": "true",
        "CLUSTER_BIND_ADDR": "127.0.0.1",
        "CLUSTER_ADVERTISE_ADDR": "127.0.0.1",
        "CLUSTER_GOSSIP_BIND_PORT": str(stack.weaviate_gossip_port),
        "CLUSTER_DATA_BIND_PORT": str(stack.weaviate_data_port),
        "CLUSTER_BASIC_AUTH_USERNAME": cluster_user,
        "CLUSTER_BASIC_AUTH_PASSWORD": cluster_password,
        "RAFT_PORT": str(raft),
        "RAFT_INTERNAL_RPC_PORT": str(raft + 1),
        "RAFT_BOOTSTRAP_EXPECT": "1",
        "RAFT_JOIN": f"{WEAVIATE_NODE}:{raft}",
        "GRPC_PORT": str(weaviate.grpc_port),
        "GO_PROFILING_DISABLE": "true",
        "DISABLE_TELEMETRY": "true",
        "QUERY_DEFAULTS_LIMIT": "25",
        "LOG_LEVEL": "warning",
    }
    if weaviate.api_key is not None:
        env |= {
            "AUTHENTICATION_APIKEY_ENABLED": "true",
            "AUTHENTICATION_APIKEY_ALLOWED_KEYS": weaviate.api_key.get_secret_value(),
            "AUTHENTICATION_APIKEY_USERS": "twin-admin",
        }
    return ServicePlan(
        name="weaviate",
        binary=binary,
        args=[
            "--host",
            weaviate.http_host,
            "--port",
            str(weaviate.http_port),
            "--scheme",
            "http",
            "--read-timeout=600s",
            "--write-timeout=600s",
        ],
        env=env,
        data_dir=data_dir,
        endpoint=weaviate.endpoint_label,
        ready_url=f"{weaviate.url}/v1/.well-known/ready",
        ports={
            "http": weaviate.http_port,
            "grpc": weaviate.grpc_port,
            "gossip": stack.weaviate_gossip_port,
            "data": stack.weaviate_data_port,
            "raft": raft,
            "raft-rpc": raft + 1,
        },
    )
