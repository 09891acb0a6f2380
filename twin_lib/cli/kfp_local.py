"""One line per step for ``twin pipeline run --local`` instead of KFP local's full dumps.

KFP local execution reports through two channels, both ending on ``sys.stdout``: records on
the root logger (``Executing task 'crawl'``, every output artifact as a multi-line JSON-ish
block, ``Task 'crawl' finished with status SUCCESS``) and each step subprocess's own output,
relayed line by line with ``print``. :func:`step_progress` attaches a filter to the root
logger that turns the start and finish records into :class:`StepResult` lines and drops
KFP's records, and redirects ``sys.stdout`` into a buffer that keeps only the tail of the
running step's output, shown when that step fails. With ``verbose`` everything passes.
KFP's warnings about settings that only a cluster applies (resources per task) are
dropped too: ``pipelines.platform`` sets them on purpose.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STARTED = re.compile(r"Executing task '(?P<task>[^']+)'")
FINISHED = re.compile(r"Task '(?P<task>[^']+)' finished with status (?P<state>\w+)")
TAIL_LINES = 40


@dataclass(frozen=True)
class StepResult:
    """How one step ended, and how long it ran."""

    task: str
    state: str
    seconds: float

    def line(self) -> str:
        return f"  {self.task:<24} {self.state:<8} {self.seconds:8.1f}s"


@dataclass
class _Progress(logging.Filter):
    report: Callable[[StepResult], None]
    verbose: bool
    started: dict[str, float] = field(default_factory=dict)
    results: list[StepResult] = field(default_factory=list)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    # A step's own threads (a launcher streaming torchrun's output) write while KFP logs.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def tail_lines(self) -> list[str]:
        with self.lock:
            return list(self.tail)

    def filter(self, record: logging.LogRecord) -> bool:
        if "kfp" not in record.pathname.split("/"):
            return True
        message = ANSI.sub("", record.getMessage())
        if match := STARTED.match(message):
            self.started[match["task"]] = time.monotonic()
            with self.lock:
                self.tail.clear()
        elif match := FINISHED.match(message):
            began = self.started.get(match["task"], time.monotonic())
            result = StepResult(match["task"], match["state"], time.monotonic() - began)
            self.results.append(result)
            self.report(result)
        return self.verbose


class _Tail(io.TextIOBase):
    """Stands in for stdout while steps run: keeps the last lines, or passes them on."""

    def __init__(self, progress: _Progress, passthrough: io.TextIOBase | None) -> None:
        self.progress = progress
        self.passthrough = passthrough

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.passthrough is not None:
            return self.passthrough.write(text)
        lines = [line for line in ANSI.sub("", text).splitlines() if line]
        with self.progress.lock:
            self.progress.tail.extend(lines)
        return len(text)


@contextlib.contextmanager
def step_progress(verbose: bool = False) -> Iterator[_Progress]:
    """Report each finished step on the current stdout while KFP local runs a pipeline.

    The yielded object's ``results`` lists the steps in order; ``tail`` holds the last
    output lines of the step that ran last (the failed one, when a run fails).
    """
    out = sys.stdout

    def report(result: StepResult) -> None:
        out.write(result.line() + "\n")
        out.flush()

    progress = _Progress(report=report, verbose=verbose)
    root = logging.getLogger()
    root.addFilter(progress)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(_Tail(progress, out if verbose else None)),
        ):
            # Each step names the components image, not a Python one; that image is this
            # very environment packaged, so running in-process is what it would do.
            warnings.filterwarnings("ignore", message=".*non-Python base image")
            if not verbose:
                warnings.filterwarnings("ignore", message=".*no effect in the current local")
            yield progress
    finally:
        root.removeFilter(progress)
