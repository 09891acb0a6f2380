"""A test API server that cannot start says why, with its own last words, and leaves no
process behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import apiserver


def test_start_failure_reports_the_log_tail(tmp_path: Path) -> None:
    binary = tmp_path / "kube-apiserver-testenv"
    binary.write_text("#!/bin/sh\necho 'Error: etcd refused to start: disk full' >&2\nexit 3\n")
    binary.chmod(0o755)
    with pytest.raises(apiserver.ApiServerError) as failed:
        apiserver.start(binary, tmp_path / "state", timeout_s=30.0)
    message = str(failed.value)
    assert "exited with code 3 during start-up" in message
    assert "etcd refused to start: disk full" in message
    assert str(tmp_path / "state" / "apiserver.log") in message
