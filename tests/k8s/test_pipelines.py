"""Pipeline catalog -> Kubernetes-native KFP objects, and the committed copy is current.

No `from __future__ import annotations` here: KFP reads the component annotations as types.
"""

from pathlib import Path

import pytest
from dotenv import dotenv_values
from kfp import dsl, kubernetes

from tests.k8s.conftest import MANIFESTS
from tests.support.pipeline_specs import (
    FEATURE_SERVICE_TASKS,
    FEATURE_SIDE_EFFECT_TASKS,
    LLM_TWIN_SERVICE_TASKS,
    LLM_TWIN_SIDE_EFFECT_TASKS,
    PROMOTE_SERVICE_TASKS,
    PROMOTE_SIDE_EFFECT_TASKS,
    TRAINING_SERVICE_TASKS,
    TRAINING_SIDE_EFFECT_TASKS,
    cluster_problems,
    tasks,
)
from twin_lib.k8s import pipelines, validate
from twin_lib.settings import TwinSettings


@dsl.component(base_image="ghcr.io/llm-twin/components:0.1.0", install_kfp_package=False)
def _count(text: str) -> int:
    return len(text)


@dsl.pipeline(name="tiny", description="Counts characters.")
def _tiny(text: str = "twin") -> None:
    _count(text=text)


def test_catalog_entry_becomes_pipeline_and_version(tmp_path: Path) -> None:
    files = pipelines.render_files({"tiny": _tiny}, namespace="kubeflow")
    docs = validate.documents(files["twin-tiny.yaml"])
    assert [doc["kind"] for doc in docs] == ["Pipeline", "PipelineVersion"]
    pipeline, version = docs
    assert pipeline["metadata"]["name"] == pipeline["spec"]["displayName"] == "twin-tiny"
    assert version["spec"]["pipelineName"] == "twin-tiny"
    assert version["metadata"]["name"].startswith("twin-tiny-")
    assert validate.kfp_objects(docs) == []
    pipelines.write_files(tmp_path, files)
    assert pipelines.stale_files(tmp_path, files) == []


def test_version_name_follows_the_spec() -> None:
    first = pipelines.pipeline_documents("tiny", _tiny)[1]["metadata"]["name"]
    again = pipelines.pipeline_documents("tiny", _tiny)[1]["metadata"]["name"]
    other = pipelines.pipeline_documents("tiny", _count)[1]["metadata"]["name"]
    assert first == again != other


@dsl.pipeline(name="tiny", description="Counts characters.")
def _tiny_with_secret(text: str = "twin") -> None:
    kubernetes.use_secret_as_env(_count(text=text), "twin-credentials", {"K": "K"})


def test_version_name_follows_the_platform_spec() -> None:
    """Injecting a Secret changes only the platform spec; it must still be a new version."""
    plain = pipelines.pipeline_documents("tiny", _tiny)[1]["metadata"]["name"]
    injected = pipelines.pipeline_documents("tiny", _tiny_with_secret)[1]["metadata"]["name"]
    assert plain != injected


@pytest.mark.parametrize(
    ("name", "count", "side_effects", "services"),
    [
        ("feature", 8, FEATURE_SIDE_EFFECT_TASKS, FEATURE_SERVICE_TASKS),
        ("training", 5, TRAINING_SIDE_EFFECT_TASKS, TRAINING_SERVICE_TASKS),
        ("llm-twin", 15, LLM_TWIN_SIDE_EFFECT_TASKS, LLM_TWIN_SERVICE_TASKS),
        ("promote", 2, PROMOTE_SIDE_EFFECT_TASKS, PROMOTE_SERVICE_TASKS),
    ],
)
def test_committed_version_is_ready_for_a_cluster(name, count, side_effects, services) -> None:
    docs = validate.documents((MANIFESTS / f"pipelines/twin-{name}.yaml").read_text())
    (version,) = [doc for doc in docs if doc["kind"] == "PipelineVersion"]
    views = tasks(version["spec"]["pipelineSpec"], version["spec"].get("platformSpec"))
    platform_env = MANIFESTS / "components/platform-env"
    problems = cluster_problems(
        views,
        dotenv_values(platform_env / "endpoints.env"),
        dotenv_values(platform_env / "secrets/credentials.env.example"),
        side_effects,
        services,
    )
    assert len(views) == count
    assert problems == []


def test_broken_pipeline_spec_is_reported() -> None:
    docs = pipelines.pipeline_documents("tiny", _tiny)
    docs[1]["spec"]["pipelineSpec"]["root"]["dagg"] = {}
    assert [f.tool for f in validate.kfp_objects(docs)] == ["kfp"]


def test_generated_objects_apply_with_the_overlays(tmp_path: Path, tools_cache: Path) -> None:
    tree = validate.prepare_tree(MANIFESTS, tmp_path / "manifests")
    pipelines.write_files(
        tree / "pipelines", pipelines.render_files({"tiny": _tiny}, namespace="kubeflow")
    )
    rendered = validate.render(tree / "overlays/dev")
    names = {
        doc["metadata"]["name"]
        for doc in validate.documents(rendered)
        if doc["kind"] in validate.KFP_KINDS
    }
    assert "twin-tiny" in names
    assert validate.validate_rendered(rendered, tools_cache) == []


def test_committed_pipeline_objects_are_current(settings: TwinSettings) -> None:
    files = pipelines.render_files(pipelines.load_catalog(), settings.kfp.namespace)
    assert pipelines.stale_files(MANIFESTS / "pipelines", files) == [], (
        "run `twin manifests pipelines` and commit manifests/pipelines/"
    )
