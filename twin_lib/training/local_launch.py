"""Local data-parallel training: torchrun as a child process, N CPU processes (gloo) or one
process per GPU (NCCL) on a machine with CUDA devices.

``accelerate launch --cpu`` starts a single process, and torchrun's ranks report world size 1
unless Accelerate is told to use the CPU, so a CPU run sets ``ACCELERATE_USE_CPU=true``; a
CUDA run must not (Accelerate would then put the model on the CPU under an NCCL-less gloo
group while the precision plan says CUDA). Each rank gets one OpenMP thread unless the caller
sets ``OMP_NUM_THREADS``: ranks x threads must not oversubscribe the cores. A timeout or
Ctrl-C stops every rank (by PID), not just torchrun.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from twin_lib.settings import TwinSettings, load_settings, to_env
from twin_lib.training.config import TrainingConfig, join_uri
from twin_lib.training.outputs import TrainingMetrics, TrainingResult
from twin_lib.training.transfer import Transfer

log = logging.getLogger(__name__)

TAIL_LINES = 120


class TrainingFailedError(RuntimeError):
    """torchrun exited non-zero or ran past its timeout; the message carries the log tail."""


def torchrun_command(nproc: int, config_path: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "--module",
        "twin_lib.training.train",
        "--config",
        str(config_path),
    ]


def cuda_devices() -> int:
    """CUDA devices torch sees here (0 without a GPU or a CUDA build)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def process_count(requested: int, gpus: int) -> int:
    """One rank per GPU at most: two NCCL ranks cannot share a device."""
    if gpus and requested > gpus:
        log.warning(
            "fewer GPUs than requested training processes; one process per GPU",
            extra={"requested": requested, "gpus": gpus},
        )
        return gpus
    return requested


def child_env(
    settings: TwinSettings, extra: dict[str, str] | None = None, *, gpus: int = 0
) -> dict[str, str]:
    env = {**os.environ, **to_env(settings), **(extra or {})}
    if not gpus:
        env["ACCELERATE_USE_CPU"] = "true"
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class LocalRun:
    """A started torchrun process group whose output is streamed with a prefix."""

    def __init__(
        self,
        config: TrainingConfig,
        nproc: int,
        *,
        settings: TwinSettings,
        work_dir: Path,
        echo: Callable[[str], None],
        prefix: str,
        env: dict[str, str] | None = None,
    ) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = work_dir / "training_config.json"
        self.config_path.write_text(config.model_dump_json(), encoding="utf-8")
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        gpus = cuda_devices()
        nproc = process_count(nproc, gpus)
        self.command = torchrun_command(nproc, self.config_path)
        self.process = subprocess.Popen(
            self.command,
            env=child_env(settings, env, gpus=gpus),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._stream, args=(echo, prefix), daemon=True)
        self._reader.start()
        log.info("torchrun started", extra={"pid": self.process.pid, "processes": nproc})

    def _stream(self, echo: Callable[[str], None], prefix: str) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            text = line.rstrip("\n")
            self.tail.append(text)
            echo(f"{prefix}{text}")

    def kill(self, sig: int = signal.SIGTERM, grace_s: float = 15.0) -> None:
        """Signal torchrun and every rank by PID; SIGKILL whatever outlives ``grace_s``.

        torchrun starts each rank in a session of its own, so signalling torchrun's process
        group would leave the ranks running (and writing checkpoints) as orphans.
        """
        try:
            ranks = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            ranks = []
        for process in ranks:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(sig)
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        # torchrun is reaped by Popen (keeping its exit status); the ranks by psutil.
        _, alive = psutil.wait_procs(ranks, timeout=grace_s)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(alive, timeout=grace_s)
        self._reader.join(timeout=5)

    def wait(self, timeout_s: float) -> int:
        """The exit code; the group is stopped on timeout or interrupt and an error raised."""
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TrainingFailedError(
                f"local training ran past its timeout of {timeout_s:.0f} s and was stopped; "
                f"raise training.local_timeout_s or shorten the run. Last lines:\n{self.log_tail}"
            ) from None
        except BaseException:
            self.kill()
            raise
        self._reader.join(timeout=5)
        return code

    @property
    def log_tail(self) -> str:
        return "\n".join(self.tail)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def read_result(settings: TwinSettings, output_uri: str) -> TrainingResult:
    """The headline numbers of a finished run, from its published ``metrics.json``."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Transfer(settings.minio).download_file(
            join_uri(output_uri, "metrics.json"), Path(scratch) / "metrics.json"
        )
        metrics = TrainingMetrics.model_validate_json(path.read_text(encoding="utf-8"))
    return TrainingResult.from_metrics(output_uri, metrics)


def run_local(
    config: TrainingConfig,
    nproc: int = 2,
    *,
    settings: TwinSettings | None = None,
    timeout_s: float | None = None,
    work_dir: Path | None = None,
    echo: Callable[[str], None] = _stderr,
    prefix: str = "[train] ",
    env: dict[str, str] | None = None,
) -> TrainingResult:
    """Train with ``nproc`` processes (at most one per GPU) and return the published result.

    Raises ``TrainingFailedError`` with the end of the log when torchrun fails or times out.
    """
    settings = settings or load_settings()
    timeout = timeout_s or settings.training.local_timeout_s
    with tempfile.TemporaryDirectory(prefix="twin-train-") as scratch:
        run = LocalRun(
            config,
            nproc,
            settings=settings,
            work_dir=work_dir or Path(scratch),
            echo=echo,
            prefix=prefix,
            env=env,
        )
        started = time.monotonic()
        code = run.wait(timeout)
    if code != 0:
        raise TrainingFailedError(
            f"local training {config.run_name!r} failed (torchrun exit code {code}) after "
            f"{time.monotonic() - started:.0f} s. Last lines:\n{run.log_tail}"
        )
    return read_result(settings, config.output_uri)
