"""The twin's model server as a local process: `python -m twin_lib.serving`, the very
predictor the cluster's InferenceService runs, started, watched and stopped like the stack.

The caller resolves the registry version first (refusals then come back at once, not as a
crashed child), and the child is pinned to that version and its downloaded weights, so what
``status`` reports is what answers. One server per state directory: a second ``up`` is
refused rather than started on another port, and it is only ever signalled by the PID it
was started with (paired with its start time).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

import twin_lib
from twin_lib.serving.client import TwinClient
from twin_lib.serving.contracts import ServedModel
from twin_lib.settings import TwinSettings, to_env
from twin_lib.stack import processes

log = logging.getLogger(__name__)

NAME = "model-server"
_TAIL_LINES = 25
_PROGRESS_EVERY_S = 15.0


class ModelServerError(RuntimeError):
    """The local model server cannot be started; the message says why and what to do."""


class ModelServerRecord(BaseModel):
    """What ``up`` started: the process's identity and what it serves where."""

    pid: int
    create_time: float
    started: datetime
    url: str
    served_name: str
    model: str
    status: str
    model_dir: Path


class ModelServerStatus(BaseModel):
    running: bool
    ready: bool = False
    pid: int | None = None
    url: str
    served_name: str
    model: str | None = None
    status: str | None = None
    uptime_s: float | None = None
    log_file: Path


class LocalModelServer:
    """The model server of the local stack described by one ``TwinSettings``."""

    def __init__(self, settings: TwinSettings) -> None:
        self.settings = settings
        self.state_dir = settings.stack.state_dir
        self.pid_file = self.state_dir / "run" / f"{NAME}.json"
        self.log_file = self.state_dir / "logs" / f"{NAME}.log"

    def url(self, port: int | None = None) -> str:
        host = self.settings.serving.bind_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port or self.settings.serving.http_port}"

    def running(self) -> ModelServerRecord | None:
        """The PID record if its process is alive and is the one we started."""
        if not self.pid_file.exists():
            return None
        record = ModelServerRecord.model_validate_json(self.pid_file.read_text())
        if processes.alive(record.pid, record.create_time) is not None:
            return record
        self.pid_file.unlink(missing_ok=True)
        return None

    def up(self, model: ServedModel, *, port: int | None = None) -> ModelServerStatus:
        """Serve ``model`` on loopback and wait until it is ready; stop it if it never is."""
        serving = self.settings.serving
        port = port or serving.http_port
        url = self.url(port)
        already = self.running()
        if already:
            raise ModelServerError(
                f"a model server already runs (PID {already.pid}, {already.model} at "
                f"{already.url}); stop it first with `twin serve down`"
            )
        _check_loopback(serving.bind_host)
        if _answers(serving.bind_host, port):
            raise ModelServerError(
                f"port {port} on {serving.bind_host} is already in use; stop what holds it "
                f"or pick another port with --port (TWIN_SERVING__HTTP_PORT)"
            )
        record = self._spawn(model, port, url)
        try:
            self._wait_ready(record)
        except BaseException:
            self._stop(record)
            raise
        return self.status()

    def _spawn(self, model: ServedModel, port: int, url: str) -> ModelServerRecord:
        pinned = self.settings.model_copy(deep=True)
        pinned.serving.model_name = model.name
        pinned.serving.version = model.version
        pinned.serving.http_port = port
        for folder in (self.pid_file.parent, self.log_file.parent):
            folder.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log_out:
            banner = f"\n=== {datetime.now(UTC).isoformat()} serving {model.label} at {url}\n"
            log_out.write(banner.encode())
        command = [sys.executable, "-m", "twin_lib.serving", "--http_port", str(port)]
        process = processes.spawn_detached(
            [*command, "--model_dir", str(model.model_dir)],
            log_file=self.log_file,
            cwd=self.state_dir,
            env={**to_env(pinned), "PYTHONUNBUFFERED": "1", "PYTHONPATH": _import_path()},
        )
        record = ModelServerRecord(
            pid=process.pid,
            create_time=process.create_time,
            started=datetime.now(UTC),
            url=url,
            served_name=pinned.serving.served_name,
            model=model.label,
            status=model.status,
            model_dir=model.model_dir,
        )
        self.pid_file.write_text(record.model_dump_json(indent=2))
        log.info(
            "model server started", extra={"pid": process.pid, "url": url, "model": model.label}
        )
        return record

    def _wait_ready(self, record: ModelServerRecord) -> None:
        timeout_s = self.settings.serving.start_timeout_s
        started = time.monotonic()
        next_report = _PROGRESS_EVERY_S
        with TwinClient(record.url, model=record.served_name) as client:
            while time.monotonic() - started < timeout_s:
                if processes.alive(record.pid, record.create_time) is None:
                    raise ModelServerError(
                        f"the model server for {record.model} exited while starting; last log "
                        f"lines:\n{self.tail(_TAIL_LINES)}\nFull log: {self.log_file}"
                    )
                waited = time.monotonic() - started
                if client.ready():
                    log.info(
                        "model server ready", extra={"url": record.url, "seconds": round(waited, 1)}
                    )
                    return
                if waited >= next_report:
                    next_report += _PROGRESS_EVERY_S
                    log.info(
                        "model server still loading",
                        extra={
                            "seconds": round(waited),
                            "timeout_s": timeout_s,
                            "log": self.tail(1),
                        },
                    )
                time.sleep(0.5)
        raise ModelServerError(
            f"the model server for {record.model} was not ready at {record.url} within "
            f"{timeout_s:.0f}s, so it was stopped; raise TWIN_SERVING__START_TIMEOUT_S if the "
            f"model is large. Last log lines:\n{self.tail(_TAIL_LINES)}\nFull log: {self.log_file}"
        )

    def down(self) -> ModelServerRecord | None:
        """Stop the running server by its recorded PID; the record of what was stopped."""
        record = self.running()
        if record is not None:
            self._stop(record)
        return record

    def _stop(self, record: ModelServerRecord) -> None:
        processes.terminate(
            record.pid,
            record.create_time,
            timeout_s=self.settings.stack.stop_timeout_s,
            label=NAME,
        )
        self.pid_file.unlink(missing_ok=True)
        log.info("model server stopped", extra={"pid": record.pid, "model": record.model})

    def status(self) -> ModelServerStatus:
        record = self.running()
        if record is None:
            return ModelServerStatus(
                running=False,
                url=self.url(),
                served_name=self.settings.serving.served_name,
                log_file=self.log_file,
            )
        with TwinClient(record.url, model=record.served_name) as client:
            ready = client.ready()
        return ModelServerStatus(
            running=True,
            ready=ready,
            pid=record.pid,
            url=record.url,
            served_name=record.served_name,
            model=record.model,
            status=record.status,
            uptime_s=(datetime.now(UTC) - record.started).total_seconds(),
            log_file=self.log_file,
        )

    def tail(self, lines: int = 50) -> str:
        return processes.tail(self.log_file, lines)

    def follow(self, poll_s: float = 0.5) -> Iterator[str]:
        return processes.follow(self.log_file, poll_s)


def _check_loopback(host: str) -> None:
    """The local server answers this machine only; other machines reach the twin on a cluster."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ModelServerError(
            f"`twin serve up` serves on loopback only, and TWIN_SERVING__BIND_HOST={host} is "
            "not a loopback address; unset it, or serve other machines from a cluster with "
            "`twin deploy`"
        )


def _answers(host: str, port: int) -> bool:
    """Whether something already accepts connections there."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _import_path() -> str:
    """PYTHONPATH for the child, so it runs this very ``twin_lib`` (a checkout or a wheel)."""
    here = str(Path(twin_lib.__file__).resolve().parent.parent)
    inherited = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join([here, *(p for p in inherited.split(os.pathsep) if p and p != here)])
