"""Stopping a server that another, still running process started: once it exits it stays
a zombie until that parent reaps it, and the stop must count it as stopped."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from twin_lib.stack import processes

# A parent that starts a sleeper, prints its PID and never reaps it.
_NEGLECTFUL_PARENT = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen(['sleep', '60'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_server_whose_parent_does_not_reap_it_counts_as_stopped():
    parent = subprocess.Popen(
        [sys.executable, "-c", _NEGLECTFUL_PARENT], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        started = psutil.Process(pid).create_time()
        began = time.monotonic()
        assert processes.terminate(pid, started, timeout_s=5.0, label="sleeper") is True
        assert time.monotonic() - began < 4.0  # not the timeout
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # its parent's to reap
    finally:
        parent.kill()
        parent.wait()
