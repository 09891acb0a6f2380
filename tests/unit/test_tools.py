"""The repository's own Go programs are found in a checkout, and an installed copy of the
library says plainly that it has none instead of failing inside ``go build``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import twin_lib
from twin_lib.k8s import tools

CHECKOUT = Path(twin_lib.__file__).resolve().parents[1]


def test_repository_tools_are_found_in_the_checkout():
    for tool in (tools.PODSECURITY_CHECK, tools.KUBE_APISERVER_TESTENV):
        assert tool.directory == CHECKOUT / tool.relative_dir
        assert (tool.directory / "go.mod").is_file()


def test_an_installed_copy_without_the_repository_names_the_fix(tmp_path: Path):
    site_packages = tmp_path / "site-packages"
    shutil.copytree(
        CHECKOUT / "twin_lib",
        site_packages / "twin_lib",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    # The checkout is importable through the environment's editable install: put the
    # installed copy first, as a real installation would be the only one.
    probe = (
        "import sys\n"
        "sys.path.insert(0, '.')\n"
        "from pathlib import Path\n"
        "from twin_lib.k8s import tools\n"
        "assert tools.__file__.startswith(str(Path.cwd())), tools.__file__\n"
        "try:\n"
        "    tools.ensure_local_tool(tools.PODSECURITY_CHECK, Path.cwd() / 'cache')\n"
        "except tools.ToolError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe],
        cwd=site_packages,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "tools/podsecurity-check/ of a source checkout" in result.stdout
    assert "run from a checkout" in result.stdout
    assert not (site_packages / "cache").exists()
