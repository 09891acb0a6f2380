"""Detached server processes that are only ever signalled by the PID we started.

The local stack and the test API server both run servers in their own session with output
in a log file. A PID alone is not an identity: the OS reuses PIDs, so every check pairs the
PID with the process's start time, and a stale PID that now belongs to another program is
never signalled.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

# psutil's create_time is a float of seconds; a second of slack absorbs clock rounding.
_SAME_START_S = 1.0


@dataclass(frozen=True)
class Spawned:
    """A process this one started: its identity, and its exit code while we are its parent."""

    popen: subprocess.Popen[bytes]
    create_time: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exit_code(self) -> int | None:
        return self.popen.poll()


def spawn_detached(
    args: Sequence[str], *, log_file: Path, cwd: Path, env: Mapping[str, str] | None = None
) -> Spawned:
    """Start ``args`` in a new session, stdout and stderr appended to ``log_file``."""
    with log_file.open("ab") as log_out:
        process = subprocess.Popen(
            list(args),
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log_out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    return Spawned(process, psutil.Process(process.pid).create_time())


def alive(pid: int, create_time: float) -> psutil.Process | None:
    """The process if it still runs and is the one started then; a zombie child is reaped."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            process.wait(timeout=0)
            return None
        if abs(process.create_time() - create_time) < _SAME_START_S:
            return process
    except (psutil.NoSuchProcess, psutil.TimeoutExpired):
        pass
    return None


def terminate(pid: int, create_time: float, *, timeout_s: float, label: str) -> bool:
    """SIGTERM, then SIGKILL after ``timeout_s``; False if it was no longer running."""
    process = alive(pid, create_time)
    if process is None:
        return False
    process.send_signal(signal.SIGTERM)
    if not _exited(process, timeout_s):
        log.warning("did not stop in time, killing", extra={"service": label, "pid": pid})
        process.kill()
        if not _exited(process, 10.0):
            raise psutil.TimeoutExpired(10.0, pid=pid, name=label)
    return True


def _exited(process: psutil.Process, timeout_s: float) -> bool:
    """Whether it exited within ``timeout_s``. Our own child is waited for and reaped.
    Another process is waited for until it is gone: an orphan (a detached service whose
    starter has exited) is reaped by init. But when a process that is still running started
    it (a long-lived caller deployed locally, then a pipeline step deploys the next version)
    only that parent can reap it, so a zombie with a living parent other than init counts as
    exited: waiting for it to vanish would never end."""
    try:
        if process.ppid() == os.getpid():
            process.wait(timeout=timeout_s)
            return True
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        return False
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            zombie = process.status() == psutil.STATUS_ZOMBIE
            if zombie and process.ppid() > 1:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= deadline:
            return zombie
        time.sleep(0.05)


def tail(path: Path, lines: int) -> str:
    if not path.exists():
        return f"(no log yet at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def follow(path: Path, poll_s: float = 0.5) -> Iterator[str]:
    """Yield lines appended to ``path`` from now on, like ``tail -f``."""
    with path.open(errors="replace") as stream:
        stream.seek(0, os.SEEK_END)
        while True:
            line = stream.readline()
            if line:
                yield line.rstrip("\n")
            else:
                time.sleep(poll_s)
