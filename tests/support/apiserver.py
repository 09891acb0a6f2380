"""A real Kubernetes API server on loopback, for checks only a server can make.

Schemas and policy libraries judge objects one by one; the API server judges them as a
cluster would: defaulting and validation of every built-in kind, CRD structural schemas with
strict field validation, the Pod Security admission plugin reading the namespace's labels,
and RBAC deciding what a ServiceAccount may do. ``tools/kube-apiserver-testenv`` runs the
kube-apiserver of ``k8s.io/kubernetes`` with an embedded etcd in one process; this module
starts it with a throw-away state directory (signing keys, an admin token, self-signed serving
certificates, etcd data), writes a kubeconfig for kubectl and the Python client, and stops it
by PID. No controllers run: nothing schedules pods or reconciles custom resources, so a test
plays the controller by writing the status subresource itself.
"""

from __future__ import annotations

import json
import logging
import secrets
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from pydantic import BaseModel, ConfigDict, SecretStr

from tests.support.isolated import free_port
from twin_lib.k8s import tools
from twin_lib.stack import processes

logger = logging.getLogger(__name__)

ADMIN_USER = "twin-admin"
# Members of system:masters pass every authorization check, as a cluster admin does.
ADMIN_GROUP = "system:masters"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/12"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# PodSecurity is on by default; naming it keeps the checks from silently losing it.
ADMISSION_PLUGINS = ("NodeRestriction", "PodSecurity")
FIELD_MANAGER = "llm-twin"
LOG_TAIL_LINES = 40
LABEL = "kube-apiserver"


class ApiServerError(RuntimeError):
    """The API server could not be started, or a request to it failed."""


class ApiServer(BaseModel):
    """A running API server and everything a client needs to reach it."""

    model_config = ConfigDict(frozen=True)

    url: str
    kubeconfig: Path
    token: SecretStr
    ca_file: Path
    pid: int
    create_time: float
    state_dir: Path
    log_file: Path
    started_in_s: float

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this server, with a discovery cache of its own.

        The cache lives in the state directory so a fresh server (new port, new CRDs) never
        reads, or pollutes, the user's ``~/.kube/cache``.
        """
        return subprocess.run(
            [
                tools.kubectl_binary(),
                "--kubeconfig",
                str(self.kubeconfig),
                "--cache-dir",
                str(self.state_dir / "kube-cache"),
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )

    def api_client(self, token: SecretStr | None = None) -> k8s_client.ApiClient:
        """A Python client configured from the same kubeconfig kubectl uses.

        ``token`` replaces the admin token, e.g. with a ServiceAccount's, so a request is
        authenticated and authorized as that identity end to end.
        """
        configuration = k8s_client.Configuration()
        k8s_config.load_kube_config(str(self.kubeconfig), client_configuration=configuration)
        if token is not None:
            # The kubeconfig loader installs a hook that restores its own token per request.
            configuration.refresh_api_key_hook = None
            configuration.api_key = {"authorization": f"Bearer {token.get_secret_value()}"}
        return k8s_client.ApiClient(configuration)


@dataclass(frozen=True)
class ApplyResult:
    """What kubectl apply reported, object by object, split into its three kinds of line."""

    returncode: int
    applied: list[str]
    warnings: list[str]
    errors: list[str]


def _write_service_account_keys(state_dir: Path) -> tuple[Path, Path]:
    """A fresh RSA key pair: the server signs ServiceAccount tokens and checks them with it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = state_dir / "sa.key"
    public = state_dir / "sa.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    private.chmod(0o600)
    return private, public


def _write_token_file(state_dir: Path, token: str) -> Path:
    """A static token file (token,user,uid,"groups") with the one admin identity."""
    path = state_dir / "tokens.csv"
    path.write_text(f'{token},{ADMIN_USER},{ADMIN_USER},"{ADMIN_GROUP}"\n')
    path.chmod(0o600)
    return path


def _write_kubeconfig(path: Path, url: str, ca_file: Path, token: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "testenv", "cluster": {"server": url, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [{"name": "testenv", "context": {"cluster": "testenv", "user": ADMIN_USER}}],
        "current-context": "testenv",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def _ready(url: str, ca_file: Path, token: str) -> bool:
    """``/readyz`` answers 200 only once etcd, RBAC bootstrap and every post-start hook are."""
    if not ca_file.exists():
        return False
    try:
        response = httpx.get(
            f"{url}/readyz",
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl.create_default_context(cafile=str(ca_file)),
            timeout=2.0,
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _wait_ready(
    process: processes.Spawned, url: str, ca_file: Path, token: str, deadline: float
) -> None:
    while not _ready(url, ca_file, token):
        if (code := process.exit_code()) is not None:
            raise ApiServerError(f"exited with code {code} during start-up")
        if time.monotonic() > deadline:
            raise ApiServerError(f"was not ready at {url}/readyz in time")
        time.sleep(0.25)


def start(binary: Path, state_dir: Path, timeout_s: float = 180.0) -> ApiServer:
    """Start the API server with all its state in ``state_dir`` and wait until it is ready.

    On failure the process is stopped and the error carries the end of its log.
    """
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    signing_key, verifying_key = _write_service_account_keys(state_dir)
    token_file = _write_token_file(state_dir, token)
    cert_dir = state_dir / "certs"
    ca_file = cert_dir / "apiserver.crt"
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    log_file = state_dir / "apiserver.log"
    args = [
        str(binary),
        "-etcd-dir",
        str(state_dir / "etcd"),
        "--",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        # The endpoint reconciler publishes the advertise address in the `kubernetes`
        # Service, which refuses loopback addresses; no pod here needs that Service.
        "--endpoint-reconciler-type=none",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
        f"--token-auth-file={token_file}",
        "--authorization-mode=Node,RBAC",
        f"--enable-admission-plugins={','.join(ADMISSION_PLUGINS)}",
        # Real clusters (kubeadm, kind) allow privileged pods and leave refusing them to Pod
        # Security, which is the policy under test here.
        "--allow-privileged=true",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={verifying_key}",
        f"--service-account-signing-key-file={signing_key}",
        "--profiling=false",
    ]
    began = time.monotonic()
    process = processes.spawn_detached(args, log_file=log_file, cwd=state_dir)
    try:
        _wait_ready(process, url, ca_file, token, deadline=began + timeout_s)
    except BaseException as error:
        processes.terminate(process.pid, process.create_time, timeout_s=30.0, label=LABEL)
        if isinstance(error, ApiServerError):
            tail = processes.tail(log_file, LOG_TAIL_LINES)
            raise ApiServerError(
                f"kube-apiserver-testenv {error}; last log lines:\n{tail}\nFull log: {log_file}"
            ) from None
        raise
    kubeconfig = state_dir / "kubeconfig"
    _write_kubeconfig(kubeconfig, url, ca_file, token)
    server = ApiServer(
        url=url,
        kubeconfig=kubeconfig,
        token=SecretStr(token),
        ca_file=ca_file,
        pid=process.pid,
        create_time=process.create_time,
        state_dir=state_dir,
        log_file=log_file,
        started_in_s=round(time.monotonic() - began, 1),
    )
    logger.info("api server ready", extra={"url": url, "seconds": server.started_in_s})
    return server


def stop(server: ApiServer, timeout_s: float = 30.0) -> None:
    """SIGTERM (the API server drains, then etcd closes), SIGKILL after ``timeout_s``."""
    processes.terminate(server.pid, server.create_time, timeout_s=timeout_s, label=LABEL)


@contextmanager
def running(cache_dir: Path, state_dir: Path) -> Iterator[ApiServer]:
    """Build the binary if needed, start a server in ``state_dir`` and always stop it."""
    binary = tools.ensure_local_tool(tools.KUBE_APISERVER_TESTENV, cache_dir)
    server = start(binary, state_dir)
    try:
        yield server
    finally:
        stop(server)


def _parse_apply(result: subprocess.CompletedProcess[str]) -> ApplyResult:
    """kubectl prints one line per object on stdout, warnings and errors on stderr."""
    stderr = [line for line in result.stderr.splitlines() if line.strip()]
    return ApplyResult(
        returncode=result.returncode,
        applied=[line for line in result.stdout.splitlines() if line.strip()],
        warnings=[line for line in stderr if line.startswith("Warning:")],
        errors=[line for line in stderr if not line.startswith("Warning:")],
    )


def apply(server: ApiServer, manifest: str, *, dry_run: bool = False) -> ApplyResult:
    """Server-side apply of a multi-document manifest with strict field validation.

    With ``dry_run`` the server runs defaulting, validation and admission (Pod Security
    included) and persists nothing.
    """
    args = ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", "-"]
    if dry_run:
        args.insert(1, "--dry-run=server")
    return _parse_apply(server.kubectl(*args, stdin=manifest))


def install_crds(server: ApiServer, crd_files: list[Path], timeout_s: float = 120.0) -> list[str]:
    """Create the CRDs and wait until each is Established, i.e. its resource is served.

    Server-side apply, because the full KServe CRDs exceed the annotation size limit of
    client-side apply. The wait polls the condition itself: ``kubectl wait`` gives up at
    once on a CRD whose status has no conditions yet.
    """
    names = [yaml.safe_load(path.read_text())["metadata"]["name"] for path in crd_files]
    files = [arg for path in crd_files for arg in ("-f", str(path))]
    created = server.kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", *files)
    if created.returncode != 0:
        raise ApiServerError(f"installing CRDs failed:\n{created.stderr}")
    deadline = time.monotonic() + timeout_s
    with server.api_client() as api:
        crds = k8s_client.ApiextensionsV1Api(api)
        pending = list(names)
        while pending:
            pending = [name for name in pending if not _established(crds, name)]
            if pending and time.monotonic() > deadline:
                raise ApiServerError(f"CRDs not established within {timeout_s:.0f}s: {pending}")
            if pending:
                time.sleep(0.2)
    return names


def _established(crds: k8s_client.ApiextensionsV1Api, name: str) -> bool:
    # Raw JSON: turning a multi-megabyte CRD schema into client models on every poll is slow.
    response = crds.read_custom_resource_definition_status(name, _preload_content=False)
    conditions = (json.loads(response.data).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def service_account_can(
    server: ApiServer,
    service_account: str,
    verb: str,
    resource: str,
    *,
    group: str = "",
    namespace: str = "",
) -> bool:
    """Ask the authorizer (RBAC) whether ``namespace/name`` may do ``verb`` on ``resource``.

    ``namespace=""`` asks about the resource in all namespaces (a cluster-wide request).
    """
    sa_namespace, sa_name = service_account.split("/")
    review = k8s_client.V1SubjectAccessReview(
        spec=k8s_client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{sa_namespace}:{sa_name}",
            groups=[
                "system:serviceaccounts",
                f"system:serviceaccounts:{sa_namespace}",
                "system:authenticated",
            ],
            resource_attributes=k8s_client.V1ResourceAttributes(
                verb=verb, group=group, resource=resource, namespace=namespace or None
            ),
        )
    )
    with server.api_client() as api:
        answer = k8s_client.AuthorizationV1Api(api).create_subject_access_review(review)
    return bool(answer.status.allowed)


def service_account_token(server: ApiServer, service_account: str) -> SecretStr:
    """A short-lived token for ``namespace/name`` from the TokenRequest API, as a pod gets."""
    namespace, name = service_account.split("/")
    request = k8s_client.AuthenticationV1TokenRequest(
        spec=k8s_client.V1TokenRequestSpec(
            audiences=[SERVICE_ACCOUNT_ISSUER], expiration_seconds=600
        )
    )
    with server.api_client() as api:
        answer = k8s_client.CoreV1Api(api).create_namespaced_service_account_token(
            name, namespace, request
        )
    return SecretStr(answer.status.token)
