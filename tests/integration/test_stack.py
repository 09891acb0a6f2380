import base64
import ipaddress
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import httpx
import psutil
import pytest
from weaviate.proto.v1 import search_get_pb2, weaviate_pb2_grpc

from tests.support.isolated import free_port, isolated_settings
from tests.support.listeners import listening, outside_address
from twin_lib.settings import TwinSettings, to_env
from twin_lib.stack import LocalStack, StackError
from twin_lib.stack.services import cluster_credentials
from twin_lib.stack.supervisor import PidRecord
from twin_lib.storage import ObjectStore, ServiceUnavailableError, VectorRecord, VectorStore
from twin_lib.storage.vector_store import chunk_collection_schema

pytestmark = pytest.mark.integration


def test_status_reports_each_running_service(stack_settings: TwinSettings):
    statuses = {s.name: s for s in LocalStack(stack_settings).status()}
    assert set(statuses) == {"minio", "weaviate"}
    for status in statuses.values():
        assert status.running
        assert status.pid is not None and psutil.pid_exists(status.pid)
        assert status.uptime_s is not None and status.uptime_s >= 0
        assert status.data_bytes > 0
        assert status.version
    assert statuses["weaviate"].version.count(".") == 2
    assert stack_settings.minio.endpoint in statuses["minio"].endpoint


def test_up_is_idempotent_while_running(stack_settings: TwinSettings):
    stack = LocalStack(stack_settings)
    pids = {s.name: s.pid for s in stack.status()}
    assert {s.name: s.pid for s in stack.up()} == pids


def test_data_survives_a_restart(stack_settings: TwinSettings, unique_name: str):
    objects = ObjectStore(stack_settings.minio)
    objects.ensure_buckets()
    objects.put_json("twin-raw", f"{unique_name}/kept.json", {"kept": True})
    schema = chunk_collection_schema(unique_name, 3)
    with VectorStore(stack_settings.weaviate) as vectors:
        vectors.ensure_collection(schema)
        record = {
            "content": "persist me",
            "title": "t",
            "author": "a",
            "category": "post",
            "source_url": "u",
            "document_id": "d",
            "chunk_index": 0,
            "content_hash": "h",
            "snapshot_id": "s",
        }
        assert vectors.upsert(schema, [VectorRecord(properties=record, vector=[1, 0, 0])]).ok

    stack = LocalStack(stack_settings)
    old_pids = {s.pid for s in stack.status()}
    assert stack.down() == ["weaviate", "minio"]
    assert not any(psutil.pid_exists(pid) for pid in old_pids)
    stack.up()

    assert objects.get_json("twin-raw", f"{unique_name}/kept.json") == {"kept": True}
    with VectorStore(stack_settings.weaviate) as vectors:
        assert vectors.count(schema) == 1


def test_up_restarts_a_service_whose_launch_configuration_changed(tmp_path: Path):
    """A stack started before a settings change (or an upgrade that adds a listener setting)
    must not keep running the old way just because it is "already running"."""
    settings = isolated_settings(tmp_path)
    stack = LocalStack(settings)
    stack.up(["minio"])
    try:
        first = stack.running("minio")
        assert first is not None
        stack.up(["minio"])
        assert stack.running("minio") == first
        settings.stack.minio_console_port = free_port()
        stack.up(["minio"])
        second = stack.running("minio")
        assert second is not None and second.pid != first.pid
        assert not psutil.pid_exists(first.pid)
        assert ("127.0.0.1", settings.stack.minio_console_port) in listening([second.pid])
    finally:
        stack.down()


def test_unreachable_services_give_one_clear_error(tmp_path: Path):
    settings = isolated_settings(tmp_path)
    with pytest.raises(ServiceUnavailableError) as minio_error:
        ObjectStore(settings.minio, attempts=2).ensure_buckets()
    assert settings.minio.url in str(minio_error.value)
    assert "twin stack up" in str(minio_error.value)
    with pytest.raises(ServiceUnavailableError) as weaviate_error:
        VectorStore(settings.weaviate, attempts=2).connect()
    assert settings.weaviate.url in str(weaviate_error.value)
    assert "twin stack up" in str(weaviate_error.value)


def test_port_in_use_is_named_and_nothing_is_left_running(tmp_path: Path):
    settings = isolated_settings(tmp_path)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", settings.weaviate.http_port))
    blocker.listen()
    try:
        with pytest.raises(StackError, match=f"http {settings.weaviate.http_port}"):
            LocalStack(settings).up()
    finally:
        blocker.close()
    assert not any(s.running for s in LocalStack(settings).status())


def test_stale_pid_file_of_another_process_is_ignored(tmp_path: Path):
    settings = isolated_settings(tmp_path)
    stack = LocalStack(settings)
    pid_file = tmp_path / "run" / "minio.json"
    pid_file.parent.mkdir(parents=True)
    reused = PidRecord(
        pid=os.getpid(),
        create_time=1.0,
        started=datetime.now(UTC),
        binary=tmp_path / "minio",
        endpoint="http://127.0.0.1:1",
    )
    pid_file.write_text(reused.model_dump_json())
    assert stack.running("minio") is None
    assert not pid_file.exists()
    assert stack.down() == []


def _twin(*args: str, state_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "twin_lib", "--state-dir", str(state_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_cli_up_status_logs_down_leaves_no_process(tmp_path: Path):
    settings = isolated_settings(tmp_path)
    env = {**os.environ, **to_env(settings)}
    up = _twin("stack", "up", state_dir=tmp_path, env=env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "stack up in" in up.stdout
        status = _twin("stack", "status", state_dir=tmp_path, env=env)
        assert status.returncode == 0
        assert status.stdout.count("running") >= 2
        assert "2 of 2 services running" in status.stdout
        logs = _twin("stack", "logs", "weaviate", "-n", "5", state_dir=tmp_path, env=env)
        assert logs.returncode == 0 and "weaviate log:" in logs.stdout
        pids = [s.pid for s in LocalStack(settings).status()]
        assert all(pids)
    finally:
        down = _twin("stack", "down", state_dir=tmp_path, env=env)
    assert down.returncode == 0
    assert "stopped weaviate, minio" in down.stdout
    assert not any(psutil.pid_exists(pid) for pid in pids)
    stopped = _twin("stack", "status", state_dir=tmp_path, env=env)
    assert stopped.returncode == 0
    assert "0 of 2 services running" in stopped.stdout


@pytest.fixture(scope="module")
def secret_object(stack_settings: TwinSettings) -> dict[str, str]:
    """One stored object whose text no unauthenticated request may ever read."""
    weaviate = stack_settings.weaviate
    assert weaviate.api_key is not None
    headers = {"Authorization": f"Bearer {weaviate.api_key.get_secret_value()}"}
    name = f"Listener{uuid.uuid4().hex[:8]}"
    object_id = str(uuid.uuid4())
    with httpx.Client(base_url=weaviate.url, headers=headers, timeout=30) as rest:
        rest.post(
            "/v1/schema",
            json={
                "class": name,
                "vectorizer": "none",
                "properties": [{"name": "content", "dataType": ["text"]}],
            },
        ).raise_for_status()
        rest.post(
            "/v1/objects",
            json={
                "class": name,
                "id": object_id,
                "properties": {"content": "only for key holders"},
                "vector": [1.0, 0.0],
            },
        ).raise_for_status()
        shard = rest.get(f"/v1/schema/{name}/shards").json()[0]["name"]
    return {"collection": name, "id": object_id, "shard": shard, "text": "only for key holders"}


def _probe_weaviate_grpc(settings: TwinSettings, secret: dict[str, str], host: str) -> None:
    """The public gRPC port has no bind option: without the API key it must answer nothing."""
    assert settings.weaviate.api_key is not None
    request = search_get_pb2.SearchRequest(
        collection=secret["collection"],
        limit=5,
        metadata=search_get_pb2.MetadataRequest(uuid=True),
        uses_123_api=True,
        uses_125_api=True,
    )
    with grpc.insecure_channel(f"{host}:{settings.weaviate.grpc_port}") as channel:
        search = weaviate_pb2_grpc.WeaviateStub(channel).Search
        with pytest.raises(grpc.RpcError) as refused:
            search(request, timeout=10)
        assert refused.value.code() in {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNKNOWN}
        assert "auth" in (refused.value.details() or "").lower()
        key = settings.weaviate.api_key.get_secret_value()
        reply = search(request, timeout=10, metadata=[("authorization", f"Bearer {key}")])
    assert [r.metadata.id for r in reply.results] == [secret["id"]]


def _probe_weaviate_data(settings: TwinSettings, secret: dict[str, str], host: str) -> None:
    """The cluster API port has no bind option: it serves objects only with its credentials."""

    def encoded(value: object) -> str:
        return base64.b64encode(json.dumps(value).encode()).decode()

    url = (
        f"http://{host}:{settings.stack.weaviate_data_port}/indices/{secret['collection']}"
        f"/shards/{secret['shard']}/objects/{secret['id']}"
    )
    params = {"additional": encoded({}), "selectProperties": encoded([{"name": "content"}])}
    for path in (url, f"http://{host}:{settings.stack.weaviate_data_port}/nodes/status"):
        anonymous = httpx.get(path, params=params, timeout=10)
        assert anonymous.status_code == 401, (path, anonymous.status_code, anonymous.text[:200])
    authorised = httpx.get(
        url, params=params, auth=cluster_credentials(settings.stack.state_dir), timeout=10
    )
    assert authorised.status_code == 200 and secret["text"] in authorised.text


def test_no_listener_serves_other_machines_without_credentials(
    stack_settings: TwinSettings, secret_object: dict[str, str]
):
    pids = [s.pid for s in LocalStack(stack_settings).status() if s.pid]
    assert len(pids) == 2
    listeners = listening(pids)
    assert listeners, "psutil saw no listening socket at all: the check would prove nothing"
    open_to_network = {port for ip, port in listeners if not ipaddress.ip_address(ip).is_loopback}
    probes: dict[int, Callable[[TwinSettings, dict[str, str], str], None]] = {
        stack_settings.weaviate.grpc_port: _probe_weaviate_grpc,
        stack_settings.stack.weaviate_data_port: _probe_weaviate_data,
    }
    unexplained = open_to_network - set(probes)
    assert not unexplained, f"listeners beyond loopback with no credential check: {listeners}"
    outside = outside_address()
    for port in sorted(open_to_network):
        probes[port](stack_settings, secret_object, outside)


@pytest.fixture
def lone_minio(tmp_path: Path) -> Iterator[TwinSettings]:
    """A private MinIO (no Weaviate) that a test may stop: the shared stack stays up."""
    settings = isolated_settings(tmp_path)
    stack = LocalStack(settings)
    stack.up(["minio"])
    try:
        yield settings
    finally:
        stack.down(["minio"])


def _assert_names_endpoint_and_fix(message: str, settings: TwinSettings) -> None:
    assert "\n" not in message.strip()
    assert f"MinIO is not reachable at {settings.minio.url} (Connection refused)" in message
    assert "twin stack up" in message


def test_minio_going_away_mid_run_gives_one_line_naming_endpoint_and_fix(
    lone_minio: TwinSettings,
):
    settings = lone_minio
    store = ObjectStore(settings.minio, attempts=2)
    store.ensure_buckets()
    blob = os.urandom(48 * 1024 * 1024)
    store.put_bytes("twin-raw", "big.bin", blob)
    store.put_json("twin-raw", "small.json", {"kept": True})
    env = {**os.environ, **to_env(settings)}

    with (
        pytest.raises(ServiceUnavailableError) as mid_read,
        store.open("twin-raw", "big.bin") as stream,
    ):
        assert stream.read(1024 * 1024) == blob[: 1024 * 1024]
        LocalStack(settings).down(["minio"])
        while stream.read(1024 * 1024):
            pass
    assert settings.minio.url in str(mid_read.value)
    assert "twin stack up" in str(mid_read.value)

    for operation in (
        lambda: store.get_json("twin-raw", "small.json"),
        lambda: store.put_json("twin-raw", "new.json", {}),
        lambda: store.list("twin-raw"),
    ):
        with pytest.raises(ServiceUnavailableError) as after:
            operation()
        _assert_names_endpoint_and_fix(str(after.value), settings)

    state_dir = settings.stack.state_dir
    listing = _twin("snapshots", "list", "raw-documents", state_dir=state_dir, env=env)
    assert listing.returncode == 1
    assert "Traceback" not in listing.stdout + listing.stderr
    _assert_names_endpoint_and_fix(listing.stdout, settings)
    assert listing.stdout.startswith("✘ ")
