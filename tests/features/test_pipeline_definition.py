"""Each compiled pipeline is what a cluster needs: injection, caching, resources, image."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from pipelines import feature_pipeline, llm_twin_pipeline, promote_pipeline, training_pipeline
from pipelines.catalog import PIPELINES
from pipelines.feature_pipeline import COMPILED, compile_pipeline
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

PLATFORM_ENV = Path(__file__).resolve().parents[2] / "manifests/components/platform-env"
ENDPOINTS = dotenv_values(PLATFORM_ENV / "endpoints.env")
CREDENTIALS = dotenv_values(PLATFORM_ENV / "secrets/credentials.env.example")


def _spec(text: str) -> list[str]:
    """The YAML without KFP's header comment, whose dict ordering varies between processes."""
    return [line for line in text.splitlines() if not line.startswith("#")]


def _views(text: str) -> list:
    pipeline_spec, platform_spec = list(yaml.safe_load_all(text))
    return tasks(pipeline_spec, platform_spec)


# pipeline module, number of tasks, tasks with side effects, tasks that talk to services
CASES = {
    "feature": (feature_pipeline, 8, FEATURE_SIDE_EFFECT_TASKS, FEATURE_SERVICE_TASKS),
    "training": (training_pipeline, 5, TRAINING_SIDE_EFFECT_TASKS, TRAINING_SERVICE_TASKS),
    "llm-twin": (llm_twin_pipeline, 15, LLM_TWIN_SIDE_EFFECT_TASKS, LLM_TWIN_SERVICE_TASKS),
    "promote": (promote_pipeline, 2, PROMOTE_SIDE_EFFECT_TASKS, PROMOTE_SERVICE_TASKS),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_yaml_is_current(tmp_path, name):
    module = CASES[name][0]
    fresh = module.compile_pipeline(tmp_path / module.COMPILED.name).read_text()
    assert _spec(fresh) == _spec(module.COMPILED.read_text()), (
        f"pipelines/{module.COMPILED.name} is stale: run `python -m {module.__name__}`"
    )


def test_catalog_holds_every_compiled_pipeline():
    assert set(PIPELINES) == set(CASES)
    assert PIPELINES["feature"] is feature_pipeline.feature_pipeline
    assert PIPELINES["training"] is training_pipeline.training_pipeline
    assert PIPELINES["llm-twin"] is llm_twin_pipeline.llm_twin
    assert PIPELINES["promote"] is promote_pipeline.promote


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_task_is_ready_for_a_cluster(name):
    module, count, side_effects, services = CASES[name]
    views = _views(module.COMPILED.read_text())
    assert len(views) == count
    assert cluster_problems(views, ENDPOINTS, CREDENTIALS, side_effects, services) == []


def test_embed_gets_the_most_memory():
    def memory(task) -> float:
        return task.resources["memoryLimit"]

    views = {task.name: task for task in _views(COMPILED.read_text())}
    assert memory(views["embed"]) == max(memory(task) for task in views.values())
    assert views["embed"].resources["cpuRequest"] > views["crawl"].resources["cpuRequest"]


def test_components_image_comes_from_settings_at_compile_time(tmp_path, monkeypatch):
    image = "registry.example.test/team/twin-components:7"
    monkeypatch.setenv("TWIN_KFP__COMPONENTS_IMAGE", image)
    views = _views(compile_pipeline(tmp_path / "pipeline.yaml").read_text())
    assert {task.image for task in views} == {image}


def test_steps_report_to_the_ui_and_install_nothing_at_run_time():
    text = COMPILED.read_text()
    assert "system.HTML" in text and "system.Metrics" in text and "system.Dataset" in text
    assert "pip install" not in text


@pytest.mark.parametrize("flip", ["cached", "uncached", "no-retry", "no-secret"])
def test_cluster_check_catches_each_mistake(flip):
    """The check above is not vacuous: each kind of mistake in one task is reported."""
    pipeline_spec, platform_spec = list(yaml.safe_load_all(COMPILED.read_text()))
    dag = pipeline_spec["root"]["dag"]["tasks"]
    executors = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    if flip == "cached":
        dag["crawl"]["cachingOptions"] = {"enableCache": True}
    elif flip == "uncached":
        dag["embed"]["cachingOptions"] = {}
    elif flip == "no-retry":
        del dag["load"]["retryPolicy"]
    else:
        del executors["exec-plan-sync"]["secretAsEnv"]
    problems = cluster_problems(
        tasks(pipeline_spec, platform_spec),
        ENDPOINTS,
        CREDENTIALS,
        FEATURE_SIDE_EFFECT_TASKS,
        FEATURE_SERVICE_TASKS,
    )
    assert len(problems) == 1
