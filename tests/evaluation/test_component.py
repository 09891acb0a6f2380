"""The evaluation's KFP component: as a cluster task (platform env, retried, never cached)
and run for real through KFP local execution against the served twin's stack.

No ``from __future__ import annotations``: KFP reads the test pipeline's real annotations.
"""

import json
from pathlib import Path

import pytest
import yaml
from kfp import compiler, dsl, local

from components.evaluation import evaluate_model
from pipelines.platform import for_cluster
from tests.support.pipeline_specs import tasks
from tests.support.serving_data import ServedSetup
from twin_lib.registry.store import ModelRegistry
from twin_lib.settings import KfpSettings, to_env

KFP = KfpSettings(components_image="registry.example/twin:1")


@dsl.pipeline(name="evaluate-only")
def evaluate_only(version: str = "") -> None:
    for_cluster(evaluate_model(version=version), kfp_settings=KFP)


def test_evaluate_task_is_retried_uncached_with_the_platform_env(tmp_path: Path) -> None:
    output = tmp_path / "evaluate.yaml"
    compiler.Compiler().compile(evaluate_only, str(output))
    spec, *platform = yaml.safe_load_all(output.read_text())
    (task,) = tasks(spec, platform[0] if platform else None)
    assert task.name == "evaluate-model" and task.image == "registry.example/twin:1"
    assert not task.cached and task.retry is not None
    assert "TWIN_WEAVIATE__HTTP_HOST" in task.config_map_env["twin-endpoints"]
    assert "TWIN_MINIO__SECRET_KEY" in task.secret_env["twin-credentials"]


@pytest.mark.integration
def test_the_component_stores_the_evaluation_and_outputs_metrics_and_the_report(
    served_setup: ServedSetup, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = served_setup.settings
    quick = settings.evaluation.model_copy(update={"max_questions": 1, "max_new_tokens": 8})
    for key, value in to_env(settings.model_copy(update={"evaluation": quick})).items():
        monkeypatch.setenv(key, value)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path))

    task = evaluate_model(version=served_setup.model.version)

    assert task.outputs["Output"] == served_setup.model.version
    page = Path(task.outputs["report"].path).read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "data:image/png;base64," in page
    logged = task.outputs["metrics"].metadata
    assert logged["questions"] == 1 and logged["twin_perplexity"] > 1
    stored = ModelRegistry(settings.minio, settings.registry).get(
        served_setup.model.name, served_setup.model.version
    )
    assert stored.evaluation["metrics"] == json.loads(json.dumps(logged))
