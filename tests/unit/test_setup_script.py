"""``source scripts/setup.sh`` must leave the user's shell as it was, even when set-up fails.

Set-up used to run ``set -euo pipefail`` in the sourcing shell itself: the next failing
command then closed an interactive terminal. A cache directory that cannot be created makes
set-up fail at once, which exercises that path in well under a second.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[2] / "scripts" / "setup.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_failed_setup_returns_an_error_and_keeps_the_shell_options():
    script = f"""
        before="$(set -o)"
        source {SETUP}
        echo "status=$?"
        false
        echo survived
        [ "$before" = "$(set -o)" ] && echo options-unchanged
        echo "unset: $never_set"
    """
    result = subprocess.run(
        ["bash", "-c", script],
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "XDG_CACHE_HOME": "/proc/none"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "status=1",
        "survived",
        "options-unchanged",
        "unset: ",
    ]
    assert "[setup] failed" in result.stderr
