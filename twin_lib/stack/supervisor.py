"""Start, watch and stop the local stack's server processes.

Each server runs detached in its own session with its output in a log file, and a PID file
that records the process's start time: a stale PID that the OS has since reused for another
program is never mistaken for ours, and processes are only ever signalled by that PID.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
from pydantic import BaseModel

from twin_lib.hashing import sha256_text
from twin_lib.settings import TwinSettings
from twin_lib.stack import argilla, processes
from twin_lib.stack.binaries import (
    StackError,
    binary_specs,
    build_record,
    resolve_binary,
)
from twin_lib.stack.services import ServicePlan, minio_plan, weaviate_plan

log = logging.getLogger(__name__)

SERVICES = ("minio", "weaviate")
# Started only on request (``twin stack up --with argilla``), in this order.
ARGILLA_SERVICES = argilla.ARGILLA_SERVICES
ALL_SERVICES = SERVICES + ARGILLA_SERVICES
# A process with no listener counts as started once it has stayed up this long.
_SETTLE_S = 2.0
_PLANNERS = {"minio": minio_plan, "weaviate": weaviate_plan}


class PidRecord(BaseModel):
    pid: int
    create_time: float
    started: datetime
    binary: Path
    endpoint: str
    # The launch configuration it runs with; records written before it existed have none.
    plan_digest: str | None = None
    version: str | None = None


def plan_digest(plan: ServicePlan) -> str:
    """Fields left at their defaults are not part of it, so adding a plan field does not
    make every running service look reconfigured."""
    return sha256_text(plan.model_dump_json(exclude_defaults=True))


class ServiceStatus(BaseModel):
    name: str
    running: bool
    version: str | None = None
    endpoint: str
    pid: int | None = None
    uptime_s: float | None = None
    data_bytes: int
    log_file: Path


class LocalStack:
    """The local MinIO + Weaviate pair described by one ``TwinSettings``."""

    def __init__(self, settings: TwinSettings) -> None:
        self.settings = settings
        self.state_dir = settings.stack.state_dir

    def _pid_file(self, name: str) -> Path:
        return self.state_dir / "run" / f"{name}.json"

    def log_file(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    def plan(self, name: str, *, allow_build: bool = True) -> ServicePlan:
        if name in ARGILLA_SERVICES:
            return argilla.plan(name, self.settings, allow_install=allow_build)
        spec = binary_specs(self.settings.stack)[name]
        explicit = getattr(self.settings.stack, f"{name}_binary")
        binary = resolve_binary(
            spec, explicit, self.settings.stack.cache_dir, allow_build=allow_build
        )
        return _PLANNERS[name](self.settings, binary)

    def install(self, services: Sequence[str] = SERVICES) -> dict[str, Path]:
        """Make sure the binaries of ``services`` exist (building them if needed), start
        nothing. Argilla's services are listed by what they were installed into."""
        found = {name: self.plan(name).binary for name in services if name in SERVICES}
        if set(services) & set(ARGILLA_SERVICES):
            found |= argilla.install(self.settings)
        return found

    def running(self, name: str) -> PidRecord | None:
        """The PID record if its process is alive and is the one we started."""
        path = self._pid_file(name)
        if not path.exists():
            return None
        record = PidRecord.model_validate_json(path.read_text())
        if processes.alive(record.pid, record.create_time) is not None:
            return record
        path.unlink(missing_ok=True)
        return None

    def up(self, services: Sequence[str] = SERVICES) -> list[ServiceStatus]:
        """Start whichever of ``services`` is not running and wait until each is ready.

        A service that runs with another launch configuration than the settings now give
        (changed ports or credentials, another binary, or a listener setting added by an
        upgrade) is restarted, so that ``up`` always leaves what the settings describe.
        If one service fails to start, the ones started by this call are stopped again so
        a failed ``up`` leaves the machine as it found it.
        """
        for name in services:
            record = self.running(name)
            if record and record.plan_digest != plan_digest(self.plan(name)):
                log.info("launch configuration changed, restarting", extra={"service": name})
                self._stop(name)
        plans = {name: self.plan(name) for name in services if not self.running(name)}
        started: list[str] = []
        ready: set[str] = set()
        try:
            for name, plan in plans.items():
                # Set-up commands run while the services it needs are still starting.
                self._prepare(plan)
                for needed in (n for n in plan.needs if n in started and n not in ready):
                    self._wait_ready(plans[needed])
                    ready.add(needed)
                self._start(plan)
                started.append(name)
            for name in started:
                if name not in ready:
                    self._wait_ready(plans[name])
        except BaseException:
            for name in started:
                self._stop(name)
            raise
        return self.status()

    def _prepare(self, plan: ServicePlan) -> None:
        """Run the plan's set-up commands (migrations, the first user), output to its log.

        They run once per launch configuration and data directory: a marker beside the data
        records that they succeeded, so a restart with the same configuration skips them.
        """
        if not plan.prepare:
            return
        done = plan.data_dir / f".prepared-{plan_digest(plan)[:16]}"
        if done.exists():
            return
        log_path = self.log_file(plan.name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        plan.data_dir.mkdir(parents=True, exist_ok=True)
        for command in plan.prepare:
            with log_path.open("ab") as log_out:
                result = subprocess.run(
                    command,
                    env={**os.environ, **plan.env},
                    cwd=plan.data_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log_out,
                    stderr=subprocess.STDOUT,
                    check=False,
                )
            if result.returncode != 0:
                raise StackError(
                    f"preparing {plan.name} failed (exit {result.returncode}); last log "
                    f"lines:\n{self.tail(plan.name, 20)}\n"
                    f"Full log: {log_path}"
                )
        done.touch()

    def _start(self, plan: ServicePlan) -> None:
        busy = [f"{label} {port}" for label, port in plan.ports.items() if not _port_free(port)]
        if busy:
            raise StackError(
                f"cannot start {plan.name}: port(s) {', '.join(busy)} already in use on "
                f"127.0.0.1. Stop what holds them, or choose other ports in the settings "
                f"(e.g. TWIN_WEAVIATE__HTTP_PORT, TWIN_MINIO__ENDPOINT, TWIN_STACK__*_PORT, "
                "TWIN_ARGILLA__URL, TWIN_ARGILLA__*_PORT)"
            )
        plan.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_file(plan.name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._pid_file(plan.name).parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log_out:
            log_out.write(f"\n=== {datetime.now(UTC).isoformat()} starting {plan.name}\n".encode())
        process = processes.spawn_detached(
            [str(plan.binary), *plan.args], log_file=log_path, cwd=plan.data_dir, env=plan.env
        )
        record = PidRecord(
            pid=process.pid,
            create_time=process.create_time,
            started=datetime.now(UTC),
            binary=plan.binary,
            endpoint=plan.endpoint,
            plan_digest=plan_digest(plan),
            version=plan.version,
        )
        self._pid_file(plan.name).write_text(record.model_dump_json(indent=2))
        log.info(
            "started", extra={"service": plan.name, "pid": process.pid, "endpoint": plan.endpoint}
        )

    def _wait_ready(self, plan: ServicePlan) -> None:
        deadline = time.monotonic() + self.settings.stack.start_timeout_s
        started = time.monotonic()
        while time.monotonic() < deadline:
            if self.running(plan.name) is None:
                raise StackError(
                    f"{plan.name} exited during start-up; last log lines:\n"
                    f"{self.tail(plan.name, 20)}\nFull log: {self.log_file(plan.name)}"
                )
            if _ready(plan, time.monotonic() - started):
                log.info(
                    "ready",
                    extra={"service": plan.name, "seconds": round(time.monotonic() - started, 1)},
                )
                return
            time.sleep(0.25)
        raise StackError(
            f"{plan.name} did not become ready at {plan.ready_url} within "
            f"{self.settings.stack.start_timeout_s:.0f}s; see `twin stack logs {plan.name}`"
        )

    def down(self, services: Sequence[str] = ALL_SERVICES) -> list[str]:
        """Stop the running ones of ``services``, dependants first; returns those stopped."""
        return [name for name in reversed(ALL_SERVICES) if name in services and self._stop(name)]

    def _stop(self, name: str) -> bool:
        record = self.running(name)
        if record is None:
            return False
        processes.terminate(
            record.pid, record.create_time, timeout_s=self.settings.stack.stop_timeout_s, label=name
        )
        self._pid_file(name).unlink(missing_ok=True)
        log.info("stopped", extra={"service": name, "pid": record.pid})
        return True

    def status(self) -> list[ServiceStatus]:
        """MinIO and Weaviate, and Argilla's services once they have been started here."""
        used = [name for name in ARGILLA_SERVICES if self.log_file(name).exists()]
        return [self._status(name) for name in (*SERVICES, *used)]

    def _status(self, name: str) -> ServiceStatus:
        record = self.running(name)
        data_dir = self.state_dir / "data" / name
        planner_endpoint = (
            argilla.endpoint(name, self.settings)
            if name in ARGILLA_SERVICES
            else {
                "minio": self.settings.minio.url,
                "weaviate": self.settings.weaviate.endpoint_label,
            }[name]
        )
        return ServiceStatus(
            name=name,
            running=record is not None,
            version=self._version(name, record),
            endpoint=record.endpoint if record else planner_endpoint,
            pid=record.pid if record else None,
            uptime_s=(datetime.now(UTC) - record.started).total_seconds() if record else None,
            data_bytes=_tree_size(data_dir),
            log_file=self.log_file(name),
        )

    def _version(self, name: str, record: PidRecord | None) -> str | None:
        if record is None:
            return None
        if record.version:
            return record.version
        if name == "weaviate":
            live = _weaviate_version(self.settings)
            if live:
                return live
        built = build_record(record.binary)
        return built.get("version")

    def tail(self, name: str, lines: int = 50) -> str:
        return processes.tail(self.log_file(name), lines)

    def follow(self, name: str, poll_s: float = 0.5) -> Iterator[str]:
        """Yield new log lines as they are written, like ``tail -f``."""
        return processes.follow(self.log_file(name), poll_s)


def _weaviate_version(settings: TwinSettings) -> str | None:
    key = settings.weaviate.api_key
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
    try:
        response = httpx.get(f"{settings.weaviate.url}/v1/meta", headers=headers, timeout=2.0)
        return response.json().get("version") if response.status_code == 200 else None
    except (httpx.HTTPError, json.JSONDecodeError):
        return None


def _ready(plan: ServicePlan, waited_s: float) -> bool:
    if plan.ready_url is None:
        return waited_s >= _SETTLE_S
    if plan.ready_url.startswith("tcp://"):
        host, _, port = plan.ready_url.removeprefix("tcp://").rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=1.0).close()
        except OSError:
            return False
        return True
    try:
        return httpx.get(plan.ready_url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _tree_size(root: Path) -> int:
    if not root.exists():
        return 0
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
