"""`twin serve` and `twin ask` end to end: one real model server (the predictor the cluster
runs, `python -m twin_lib.serving`) started by the CLI for this module, on the session stack
with the labelled corpus and the tiny offline model, asked over REST, and stopped by PID."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.support.isolated import free_port
from tests.support.listeners import listening, outside_address
from tests.support.serving_data import ServedSetup
from twin_lib.cli import app
from twin_lib.serving.client import TwinClient
from twin_lib.settings import TwinSettings, to_env
from twin_lib.stack.model_server import (
    LocalModelServer,
    ModelServerError,
    ModelServerRecord,
)

pytestmark = pytest.mark.integration


@dataclass
class Served:
    settings: TwinSettings
    env: dict[str, str]
    up: Result
    record: ModelServerRecord | None

    def twin(self, *args: str) -> Result:
        return CliRunner().invoke(app, list(args), env=self.env)


def own_corner(setup: ServedSetup, state_dir: Path) -> TwinSettings:
    """The served setup with a state directory (PID file, log) and a port of its own."""
    settings = setup.settings.model_copy(deep=True)
    settings.stack.state_dir = state_dir
    settings.serving.http_port = free_port()
    return settings


@pytest.fixture(scope="module")
def served(served_setup: ServedSetup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    settings = own_corner(served_setup, tmp_path_factory.mktemp("model-server"))
    env = to_env(settings)
    del env["TWIN_SERVING__VERSION"]  # named on the command line instead
    server = LocalModelServer(settings)
    try:
        up = CliRunner().invoke(
            app, ["serve", "up", "--version", served_setup.model.version], env=env
        )
        yield Served(settings, env, up, server.running())
    finally:
        server.down()


def test_up_serves_the_named_version_and_says_where(served: Served, served_setup: ServedSetup):
    assert served.up.exit_code == 0, served.up.output
    assert served.record is not None
    assert served.record.model == served_setup.model.label
    assert (
        f"serving {served_setup.model.label} as 'twin' at {served.record.url}" in served.up.output
    )
    assert psutil.pid_exists(served.record.pid)


def test_status_shows_pid_url_version_and_uptime(served: Served, served_setup: ServedSetup):
    assert served.record is not None
    result = served.twin("serve", "status")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if str(served.record.pid) in line)
    for shown in ("ready", served_setup.model.label, "approved", served.record.url):
        assert shown in row, result.output
    assert f"{served_setup.model.label} ready at {served.record.url}" in result.output


def test_logs_show_the_servers_output(served: Served, served_setup: ServedSetup, tmp_path: Path):
    assert served.record is not None
    result = served.twin("serve", "logs", "-n", "1000")
    assert result.exit_code == 0, result.output
    assert f"serving {served_setup.model.label} at {served.record.url}" in result.output
    none_yet = CliRunner().invoke(
        app, ["serve", "logs"], env={**served.env, "TWIN_STACK__STATE_DIR": str(tmp_path)}
    )
    assert none_yet.exit_code == 1 and "no model server log yet" in none_yet.output


def test_ask_prints_the_answer_its_sources_and_a_summary(served: Served, served_setup: ServedSetup):
    assert served.record is not None
    question, expected_url = served_setup.questions[0]
    with TwinClient(served.record.url) as client:
        direct = client.ask(question, max_tokens=8)
    assert expected_url in [source.url for source in direct.sources]
    assert direct.model_version == served_setup.model.label
    assert direct.completion_tokens and direct.completion_tokens >= 1

    for stream in ([], ["--stream"]):
        result = served.twin("ask", question, "--max-tokens", "8", *stream)
        assert result.exit_code == 0, result.output
        # Retrieval is deterministic: the CLI shows the same chunks the direct call got.
        for source in direct.sources:
            assert source.chunk_id in result.output
        summary = result.output.strip().splitlines()[-1]
        assert summary.startswith("✔ answer ") and f"from {served_setup.model.label} in " in summary


def test_a_second_up_is_refused_and_the_first_keeps_serving(served: Served):
    assert served.record is not None
    again = served.twin("serve", "up", "--port", str(free_port()))
    assert again.exit_code == 1
    assert f"a model server already runs (PID {served.record.pid}" in again.output
    assert LocalModelServer(served.settings).running() == served.record
    with TwinClient(served.record.url) as client:
        assert client.ready()


def test_the_server_listens_on_loopback_only(served: Served):
    assert served.record is not None
    listeners = listening([served.record.pid])
    port = served.settings.serving.http_port
    assert ("127.0.0.1", port) in listeners, listeners
    assert all(ipaddress.ip_address(ip).is_loopback for ip, _ in listeners), listeners
    outside = outside_address()
    if outside != "127.0.0.1":  # this machine has another address: nothing answers there
        with pytest.raises(OSError):
            socket.create_connection((outside, port), timeout=2).close()


def test_down_stops_the_process_and_ask_then_says_how_to_start_it(served: Served):
    assert served.record is not None
    result = served.twin("serve", "down")
    assert result.exit_code == 0, result.output
    assert f"stopped the model server (PID {served.record.pid}" in result.output
    assert not psutil.pid_exists(served.record.pid)
    assert "no model server is running" in served.twin("serve", "status").output
    asked = served.twin("ask", "Anyone there?")
    assert asked.exit_code == 1
    assert f"not reachable at {served.record.url}" in asked.output
    assert "twin serve up" in asked.output


def test_up_refuses_to_serve_beyond_loopback(served_setup: ServedSetup, tmp_path: Path):
    settings = own_corner(served_setup, tmp_path)
    env = {**to_env(settings), "TWIN_SERVING__BIND_HOST": "0.0.0.0"}
    try:
        result = CliRunner().invoke(app, ["serve", "up"], env=env)
    finally:  # were it started after all, it must not outlive the test
        LocalModelServer(settings).down()
    assert result.exit_code == 1
    assert "TWIN_SERVING__BIND_HOST=0.0.0.0 is not a loopback address" in result.output
    assert LocalModelServer(settings).running() is None


def test_up_refuses_a_port_in_use(served_setup: ServedSetup, tmp_path: Path):
    settings = own_corner(served_setup, tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ModelServerError, match=f"port {port} on 127.0.0.1 is already in use"):
            LocalModelServer(settings).up(served_setup.model, port=port)
    assert not _servers_of_this_process()


def test_a_server_that_dies_while_starting_is_reported_with_its_log(
    served_setup: ServedSetup, tmp_path: Path
):
    """The child is pinned to a version the registry does not have: it exits at load."""
    server = LocalModelServer(own_corner(served_setup, tmp_path))
    missing = served_setup.model.model_copy(update={"version": "v999"})
    with pytest.raises(ModelServerError) as failed:
        server.up(missing)
    message = str(failed.value)
    assert f"the model server for {missing.label} exited while starting" in message
    assert "v999" in message.split("last log lines:")[1]  # the child's own error
    assert str(server.log_file) in message
    assert server.running() is None and not server.pid_file.exists()


def test_a_server_not_ready_in_time_is_stopped(served_setup: ServedSetup, tmp_path: Path):
    settings = own_corner(served_setup, tmp_path)
    settings.serving.start_timeout_s = 0.5
    server = LocalModelServer(settings)
    with pytest.raises(ModelServerError, match=r"was not ready at .* within 0s, so it was stopped"):
        server.up(served_setup.model)
    assert server.running() is None and not server.pid_file.exists()
    assert not _servers_of_this_process()


def _servers_of_this_process() -> list[psutil.Process]:
    """Model servers this test process started that still run."""
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if child.is_running()
        and child.status() != psutil.STATUS_ZOMBIE
        and "twin_lib.serving" in " ".join(child.cmdline())
    ]
