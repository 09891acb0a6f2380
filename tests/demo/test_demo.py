"""``twin demo``, the README's main job, end to end as a newcomer runs it.

It starts its own stack (fresh loopback ports, a private state directory), crawls the bundled
corpus from web articles on a loopback HTTP server and a git repository, runs ``llm-twin``
and ``promote`` through KFP local execution (two torchrun processes train), deploys the
approved twin on the local model server and asks it over REST. The second run must reuse
everything: no new documents, no new version, the same server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.support.isolated import free_port, isolated_settings
from twin_lib.cli import app
from twin_lib.demo.corpus import AUTHOR
from twin_lib.registry.models import DeploymentAction, ModelStatus
from twin_lib.registry.store import ModelRegistry
from twin_lib.serving.client import TwinClient
from twin_lib.settings import TwinSettings, to_env
from twin_lib.stack import LocalStack
from twin_lib.stack.model_server import LocalModelServer
from twin_lib.steps.registry import model_lineage

pytestmark = pytest.mark.integration


class DemoRuns:
    def __init__(
        self, settings: TwinSettings, first: Result, second: Result, evaluated: list[str]
    ) -> None:
        self.settings, self.first, self.second = settings, first, second
        self.evaluated = evaluated  # when v0001's evaluation was made, after each run
        self.kfp = settings.stack.state_dir / "demo" / "kfp"


def run_demo(settings: TwinSettings) -> Result:
    return CliRunner().invoke(app, ["demo"], env=to_env(settings))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRuns]:
    settings = isolated_settings(tmp_path_factory.mktemp("demo-state"))
    settings.serving.http_port = free_port()
    settings.demo.http_port = free_port()
    # The README's command with fewer chapters (10 articles, 4 in the repository instead of
    # 16 and 8): the same loop, within the suite's time budget.
    settings.demo.web_chapters, settings.demo.git_chapters = 10, 4
    try:
        registry = ModelRegistry(settings.minio, settings.registry)
        runs, evaluated = [], []
        for _ in range(2):
            runs.append(run_demo(settings))
            assert runs[-1].exit_code == 0, runs[-1].output + runs[-1].stderr
            evaluated.append(registry.get("twin", "v0001").evaluation["created"])
        yield DemoRuns(settings, *runs, evaluated)
    finally:
        LocalModelServer(settings).down()
        LocalStack(settings).down()


def task_outputs(root: Path, task: str) -> list[dict]:
    """The task's executor output in every run under ``root``, oldest first."""
    return [
        json.loads(path.read_text()) for path in sorted(root.glob(f"*/{task}/executor_output.json"))
    ]


def metrics(output: dict) -> dict[str, float]:
    return output["artifacts"]["metrics"]["artifacts"][0]["metadata"]


@pytest.mark.timeout(1800)
def test_the_first_run_deploys_an_approved_twin_that_answers_over_rest(demo: DemoRuns):
    registry = ModelRegistry(demo.settings.minio, demo.settings.registry)
    [model] = registry.list_versions("twin")
    assert model.status == ModelStatus.DEPLOYED
    assert [event.action for event in model.deployments] == [DeploymentAction.CREATED]
    for step in ("crawl", "load", "base-model", "preference-dataset", "train", "register"):
        assert f"  {step} " in demo.first.output
    trained = metrics(task_outputs(demo.kfp / "llm-twin", "train")[0])
    assert trained["world_size"] == 2
    assert trained["final_eval_loss"] < trained["base_eval_loss"]
    assert "<img" in next((demo.kfp / "llm-twin").glob("*/train/loss_curve")).read_text()
    assert model.base_model.startswith(f"s3://{demo.settings.minio.models_bucket}/base/")
    assert set(model.dataset_snapshots) == {"instruction", "preference"}
    assert (
        model.evaluation["metrics"]["twin_perplexity"]
        < model.evaluation["metrics"]["base_perplexity"]
    )
    for stage in ("[1/6] stack", "[3/6] llm-twin", "[6/6] ask", "evaluation of twin v0001"):
        assert stage in demo.first.output
    assert "demo done" in demo.first.output and "v0001 is deployed" in demo.first.output
    lineage = model_lineage(demo.settings.minio, "twin", registry=demo.settings.registry)
    web = [url for url in lineage.source_urls if url.startswith("http://127.0.0.1:")]
    repository = [url for url in lineage.source_urls if "repository" in url]
    assert len(web) == demo.settings.demo.web_chapters and repository
    registered = metrics(task_outputs(demo.kfp / "llm-twin", "register")[0])
    assert registered["source_urls"] == len(lineage.source_urls)
    served = LocalModelServer(demo.settings).running()
    assert served is not None and served.model == "twin/v0001"
    with TwinClient(served.url) as client:
        answer = client.ask("Who made the heaven and the earth?", max_tokens=16)
    assert answer.sources and all(source.url in lineage.source_urls for source in answer.sources)
    assert answer.model_version == "twin/v0001"
    report = next((demo.kfp / "llm-twin").glob("*/evaluate-model/report")).read_text()
    assert AUTHOR in report and "<img" in report


def test_the_second_run_reuses_what_did_not_change(demo: DemoRuns):
    registry = ModelRegistry(demo.settings.minio, demo.settings.registry)
    assert [m.version for m in registry.list_versions("twin")] == ["v0001"]
    sync = [metrics(output) for output in task_outputs(demo.kfp / "llm-twin", "plan-sync")]
    assert len(sync) == 2
    assert sync[1]["documents_to_load"] == 0
    loads = [metrics(output) for output in task_outputs(demo.kfp / "llm-twin", "load")]
    assert loads[0]["chunks_written"] > 0 and loads[1]["chunks_written"] == 0
    assert sync[1]["documents_unchanged"] == sync[0]["documents_to_load"]
    assert demo.evaluated[1] == demo.evaluated[0]  # evaluation reused, not run again
    assert "v0001 is deployed already: nothing to decide" in demo.second.output
    assert "already serves twin/v0001" in demo.second.output
    assert len(list((demo.kfp / "promote").iterdir())) == 1  # the gate ran once
    assert "demo done" in demo.second.output
