import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from tests.support.isolated import isolated_settings
from twin_lib.settings import TwinSettings, to_env
from twin_lib.stack import LocalStack, StackError
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
