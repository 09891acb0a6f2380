"""What the manifests, images, skaffold and settings say about each other agrees."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

from pipelines import platform
from tests.k8s.conftest import MANIFESTS, OVERLAYS, REPO
from twin_lib.k8s import validate
from twin_lib.settings import TwinSettings, to_env

PROJECT_IMAGES = "ghcr.io/llm-twin/"


def _images(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["image"]} if isinstance(node.get("image"), str) else set()
        return found.union(*(_images(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_images(v) for v in node))
    return set()


def test_project_images_match_settings_and_skaffold(
    rendered: dict[str, str], settings: TwinSettings
) -> None:
    used = set().union(*(_images(validate.documents(text)) for text in rendered.values()))
    ours = {image for image in used if image.startswith(PROJECT_IMAGES)}
    repositories = {image.rsplit(":", 1)[0] for image in ours}
    skaffold = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    artifacts = {a["image"]: a for a in skaffold["build"]["artifacts"]}
    assert settings.kfp.components_image in ours
    assert repositories == set(artifacts)
    assert {image.rsplit(":", 1)[1] for image in ours} == {
        settings.kfp.components_image.rsplit(":", 1)[1]
    }
    for artifact in artifacts.values():
        assert (REPO / artifact.get("context", ".") / artifact["docker"]["dockerfile"]).exists()


def test_endpoints_are_settings_the_platform_reads(rendered: dict[str, str]) -> None:
    env = {
        **dotenv_values(MANIFESTS / "components/platform-env/endpoints.env"),
        **dotenv_values(MANIFESTS / "components/platform-env/secrets/credentials.env.example"),
    }
    settings = TwinSettings.model_validate(_nested(env))
    services = {
        f"{doc['metadata']['name']}.{doc['metadata']['namespace']}.svc.cluster.local": doc
        for doc in validate.documents(rendered["overlays/dev"])
        if doc["kind"] == "Service"
    }
    minio_host, minio_port = settings.minio.endpoint.split(":")
    assert int(minio_port) in _ports(services[minio_host])
    assert settings.weaviate.http_port in _ports(services[settings.weaviate.http_host])
    assert settings.weaviate.grpc_port in _ports(services[settings.weaviate.grpc_host])


def test_kfp_namespace_agrees(rendered: dict[str, str], settings: TwinSettings) -> None:
    text = rendered["overlays/dev"]
    kfp_objects = [
        doc
        for doc in validate.documents(text)
        if doc["metadata"].get("namespace") == settings.kfp.namespace
    ]
    assert {doc["metadata"]["name"] for doc in kfp_objects} >= {
        "twin-endpoints",
        "twin-credentials",
    }
    assert f"kubernetes.io/metadata.name: {settings.kfp.namespace}" in text


def test_minio_setup_creates_the_settings_buckets(
    rendered: dict[str, str], settings: TwinSettings
) -> None:
    job = next(
        doc
        for doc in validate.documents(rendered["overlays/dev"])
        if doc["kind"] == "Job" and doc["metadata"]["name"] == "twin-minio-setup"
    )
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert set(settings.minio.buckets) <= set(re.findall(r"[\w-]+", script))


def test_every_secret_env_file_is_ignored_and_has_an_example() -> None:
    examples = sorted(MANIFESTS.rglob("secrets/*.env.example"))
    referenced = {
        (path.parent / env).resolve()
        for path in MANIFESTS.rglob("kustomization.yaml")
        for generator in yaml.safe_load(path.read_text()).get("secretGenerator", [])
        for env in generator.get("envs", [])
    }
    assert referenced == {example.with_suffix("").resolve() for example in examples}
    ignore = (REPO / ".gitignore").read_text()
    assert "manifests/**/secrets/*.env" in ignore


def test_overlays_differ_only_where_intended(rendered: dict[str, str]) -> None:
    counts = [len(validate.documents(rendered[overlay])) for overlay in OVERLAYS]
    assert len(set(counts)) == 1


def _nested(env: dict[str, str | None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in env.items():
        *groups, leaf = key.removeprefix("TWIN_").lower().split("__")
        target = out
        for group in groups:
            target = target.setdefault(group, {})
        target[leaf] = value
    return out


def _ports(service: dict[str, Any]) -> set[int]:
    return {port["port"] for port in service["spec"]["ports"]}


def test_dockerfiles_exist_for_each_image() -> None:
    assert {p.name for p in (REPO / "images").iterdir() if p.is_dir()} == {"cpu", "trainer"}
    images = {a["image"].rsplit("/", 1)[-1]: a for a in _skaffold_artifacts()}
    assert set(images) == {"components", "trainer", "serving"}
    assert all((REPO / a["docker"]["dockerfile"]).is_file() for a in images.values())
    assert (REPO / ".dockerignore").exists()
    assert not list(Path(REPO / "images").rglob("*.env"))


def test_pipeline_tasks_get_exactly_the_platform_env_keys() -> None:
    env_dir = MANIFESTS / "components/platform-env"
    assert list(platform.ENDPOINT_KEYS) == list(dotenv_values(env_dir / "endpoints.env"))
    credentials = dotenv_values(env_dir / "secrets/credentials.env.example")
    assert list(platform.CREDENTIAL_KEYS) == list(credentials)
    settings_env = to_env(TwinSettings.model_validate({"kfp": {"host": "http://kfp:8888"}}))
    assert set(platform.ENDPOINT_KEYS + platform.CREDENTIAL_KEYS) <= set(settings_env)


# Shared libraries the lock's CUDA torch build links (`readelf -d torch/lib/*.so`): torch does
# not import without them, so even the CPU images keep them. Every other CUDA-only package
# torch pulls in is left out of the CPU images.
TORCH_LINKED = {
    "nvidia-cublas",
    "nvidia-cuda-cupti",
    "nvidia-cuda-nvrtc",
    "nvidia-cuda-runtime",
    "nvidia-cudnn-cu13",
    "nvidia-cufft",
    "nvidia-cufile",
    "nvidia-cusparse",
    "nvidia-cusparselt-cu13",
    "nvidia-nccl-cu13",
    "nvidia-nvjitlink",
    "nvidia-nvshmem-cu13",
}
GPU_ONLY = re.compile(r"(nvidia-|cuda-)|triton$")


def _lock_closure(roots: list[str]) -> set[str]:
    """Every package reachable from ``roots`` in uv.lock, extras followed."""
    packages = {p["name"]: p for p in tomllib.loads((REPO / "uv.lock").read_text())["package"]}
    seen: set[str] = set(roots)
    todo = list(roots)
    while todo:
        package = packages[todo.pop()]
        deps = list(package.get("dependencies", []))
        for dep in list(deps):
            for extra in dep.get("extra", []):
                deps += packages[dep["name"]].get("optional-dependencies", {}).get(extra, [])
        for dep in deps:
            if dep["name"] not in seen:
                seen.add(dep["name"])
                todo.append(dep["name"])
    return seen


def _torch_gpu_packages() -> set[str]:
    """CUDA-only packages in torch's dependency closure in uv.lock."""
    return {name for name in _lock_closure(["torch"]) - {"torch"} if GPU_ONLY.match(name)}


def _runtime_imports(tree: ast.AST) -> Iterator[str]:
    """Modules a file imports when it runs (``if TYPE_CHECKING:`` blocks left out)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _imported_distributions(roots: list[str]) -> set[str]:
    """Distributions the project's own code imports, following its modules from ``roots``
    (function-level imports included: a lazy import fails in the pod all the same)."""
    seen: set[str] = set()
    todo = list(roots)
    external: set[str] = set()
    while todo:
        name = todo.pop()
        path = REPO / Path(*name.split("."))
        file = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        if name in seen or not file.is_file():
            continue
        seen.add(name)
        for module in _runtime_imports(ast.parse(file.read_text())):
            top = module.split(".")[0]
            if top == "twin_lib":
                todo.append(module)
            elif top not in sys.stdlib_module_names:
                external.add(top)
    owners = importlib.metadata.packages_distributions()
    return {re.sub(r"[-_.]+", "-", d).lower() for top in external for d in owners.get(top, [top])}


def _dockerfile(image: str) -> str:
    return (REPO / "images" / image / "Dockerfile").read_text()


def _skaffold_artifacts() -> list[dict]:
    """Every image artifact skaffold builds, in the default build and in each profile."""
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    builds = [config["build"], *(p["build"] for p in config.get("profiles", []) if "build" in p)]
    return [artifact for build in builds for artifact in build["artifacts"]]


def _extras(artifact: dict) -> set[str]:
    """The extras an image installs: its build argument, else the Dockerfile's default."""
    docker = artifact["docker"]
    given = docker.get("buildArgs", {}).get("EXTRAS") or (REPO / docker["dockerfile"]).read_text()
    return set(re.findall(r"--extra ([\w-]+)", given))


def test_cpu_images_leave_out_what_cpu_torch_never_loads() -> None:
    gpu_only = _torch_gpu_packages()
    assert gpu_only >= TORCH_LINKED, "uv.lock changed torch's CUDA wheels: update TORCH_LINKED"
    skipped = set(re.findall(r"--no-install-package ([\w.-]+)", _dockerfile("cpu")))
    assert skipped == gpu_only - TORCH_LINKED, "images/cpu/Dockerfile"
    assert "--no-install-package" not in _dockerfile("trainer")


def test_each_image_installs_only_existing_extras() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for artifact in _skaffold_artifacts():
        name = artifact["image"].rsplit("/", 1)[-1]
        wanted = _extras(artifact)
        assert wanted <= set(extras), artifact
        expected_target = {"components": "components", "serving": "serving"}.get(name)
        assert artifact["docker"].get("target") == expected_target, artifact
        if name == "serving":
            assert wanted == {"serving"}
        elif name == "trainer":
            assert wanted == {"training"}
        else:
            assert {"features", "orchestration"} <= wanted
        assert "INDEX" not in (REPO / artifact["docker"]["dockerfile"]).read_text()


def test_serving_image_installs_what_the_predictor_imports() -> None:
    """The serving image has the base dependencies and the serving extra only: an import
    the predictor makes from another extra would fail in the pod, not in this checkout."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    project = next(p for p in lock["package"] if p["name"] == "llm-twin")
    roots = [d["name"] for d in project["dependencies"]]
    roots += [d["name"] for d in project["optional-dependencies"]["serving"]]
    installed = _lock_closure(roots)
    imported = _imported_distributions(
        ["twin_lib.serving.server", "twin_lib.serving.twin", "twin_lib.features.embedding"]
    )
    assert imported - installed == set(), "add these to the serving extra in pyproject.toml"
