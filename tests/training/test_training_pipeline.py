"""The whole training pipeline through KFP local execution against the real local stack.

An author's chunks go in; a registered candidate comes out whose held-out loss beats its base
model's and whose lineage reaches the author's source files. Two torchrun processes train.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fixtures.corpus.kjv import load_chapters, write_markdown_folder
from tests.support.isolated import private_stores
from twin_lib.cli import app
from twin_lib.crawl import Source
from twin_lib.registry.models import ModelStatus
from twin_lib.settings import (
    BaseModelRecipe,
    DatasetSettings,
    FeaturesSettings,
    ResponderSettings,
    StageHyperparameters,
    TrainingSettings,
    TwinSettings,
    to_env,
)
from twin_lib.steps.feature_run import run_feature_steps
from twin_lib.steps.registry import model_lineage

pytestmark = pytest.mark.integration

AUTHOR = "Ada"


@pytest.fixture
def private(stack_settings: TwinSettings) -> TwinSettings:
    """Buckets and a collection of this test only, so other tests' exact counts hold."""
    return private_stores(stack_settings)


def small_training() -> dict:
    """The tiny offline base model and a few steps per stage: minutes on 2 CPU processes."""
    stage = {"batch_size": 4, "max_length": 128, "warmup_ratio": 0.0}
    return TrainingSettings(
        base_recipe=BaseModelRecipe.tiny(),
        sft=StageHyperparameters(max_steps=24, learning_rate=3e-3, **stage),
        dpo=StageHyperparameters(max_steps=2, learning_rate=1e-4, **stage),
        local_processes=2,
        local_timeout_s=900,
        checkpoint_steps=12,
    ).model_dump(mode="json", exclude_none=True)


def small_datasets() -> dict:
    """Sampled, short base-model answers: the tiny model's greedy answer is often empty."""
    responder = ResponderSettings(do_sample=True, max_new_tokens=32, min_new_tokens=8)
    return DatasetSettings(responder=responder).model_dump(mode="json", exclude_none=True)


def metrics_of(root: Path, name: str) -> dict[str, float]:
    newest = sorted(root.glob(f"*/{name}/executor_output.json"))[-1]
    output = json.loads(newest.read_text())
    return output["artifacts"]["metrics"]["artifacts"][0]["metadata"]


@pytest.mark.timeout(1500)
def test_local_training_pipeline_registers_a_candidate_that_beats_its_base(
    private: TwinSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_markdown_folder(load_chapters(12), tmp_path / "essays")
    run_feature_steps(
        [Source(url=str(folder))],
        author=AUTHOR,
        workdir=tmp_path / "features",
        minio=private.minio,
        weaviate=private.weaviate,
        features=FeaturesSettings(),
    )
    for key, value in to_env(private).items():
        monkeypatch.setenv(key, value)
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"training": small_training(), "datasets": small_datasets()}))
    root = tmp_path / "kfp"

    result = CliRunner().invoke(
        app,
        [
            "pipeline",
            "run",
            "training",
            "--local",
            "--param",
            f"author={AUTHOR}",
            "--params-file",
            str(params),
            "--pipeline-root",
            str(root),
        ],
    )

    assert result.exit_code == 0, result.output + result.stderr
    for step in ("base-model", "instruction-dataset", "preference-dataset", "train", "register"):
        assert step in result.output
    trained = metrics_of(root, "train")
    assert trained["world_size"] == 2
    assert trained["final_eval_loss"] < trained["base_eval_loss"]
    assert "<img" in next(root.glob("*/train/loss_curve")).read_text()
    lineage = model_lineage(private.minio, "twin", registry=private.registry)
    assert lineage.model.status is ModelStatus.CANDIDATE
    assert lineage.model.base_model.startswith(f"s3://{private.minio.models_bucket}/base/")
    assert set(lineage.model.dataset_snapshots) == {"instruction", "preference"}
    assert lineage.source_urls and all(
        url.startswith(folder.as_uri()) or url.startswith(str(folder))
        for url in lineage.source_urls
    )
    assert metrics_of(root, "register")["source_urls"] == len(lineage.source_urls)
