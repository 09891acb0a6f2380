"""The run submitter picks the newest registered version and passes typed arguments."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from twin_lib.k8s.submit import SubmitError, parse_params, pipeline_arguments, submit_run
from twin_lib.settings import TwinSettings


class FakeClient:
    def __init__(self, host: str, registered: bool = True) -> None:
        self.host = host
        self.registered = registered
        self.runs: list[dict[str, Any]] = []

    def get_pipeline_id(self, name: str) -> str | None:
        return f"id-{name}" if self.registered else None

    def list_pipeline_versions(self, pipeline_id: str, **query: Any) -> SimpleNamespace:
        assert query["sort_by"] == "created_at desc"
        version = SimpleNamespace(pipeline_version_id="v2", display_name="twin-feature-abc")
        return SimpleNamespace(pipeline_versions=[version])

    def create_experiment(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(experiment_id=f"exp-{name}")

    def run_pipeline(self, **kwargs: Any) -> SimpleNamespace:
        self.runs.append(kwargs)
        return SimpleNamespace(run_id="run-1")


def test_submits_latest_version_with_typed_params() -> None:
    settings = TwinSettings.model_validate({"kfp": {"host": "http://kfp:8888"}})
    clients: list[FakeClient] = []

    def factory(host: str) -> FakeClient:
        clients.append(FakeClient(host))
        return clients[-1]

    params = parse_params(["limit=3", "source=blog", "dry=true"])
    assert submit_run(settings, "feature", params, client_factory=factory) == "run-1"
    (run,) = clients[0].runs
    assert run["pipeline_id"] == "id-twin-feature"
    assert run["version_id"] == "v2"
    assert run["experiment_id"] == "exp-llm-twin"
    assert run["params"] == {"limit": 3, "source": "blog", "dry": True}


def test_unregistered_pipeline_says_what_to_apply() -> None:
    settings = TwinSettings.model_validate({"kfp": {"host": "http://kfp:8888"}})
    with pytest.raises(SubmitError, match="kubectl apply -k"):
        submit_run(settings, "feature", {}, client_factory=lambda host: FakeClient(host, False))


def test_bad_param_is_rejected() -> None:
    with pytest.raises(SubmitError, match="name=value"):
        parse_params(["novalue"])


def _pipeline(sources: list, author: str, features: dict | None = None) -> None:
    """Stands for a catalog pipeline: only its signature matters here."""


def test_arguments_follow_the_pipeline_signature() -> None:
    fallbacks = {"features": {"from": "settings"}, "stack": {"unused": True}}
    given = {"sources": ["a"], "author": "Ada"}
    assert pipeline_arguments(_pipeline, given, fallbacks) == {
        "sources": ["a"],
        "author": "Ada",
        "features": {"from": "settings"},
    }
    explicit = {**given, "features": {"from": "flag"}}
    assert pipeline_arguments(_pipeline, explicit, fallbacks)["features"] == {"from": "flag"}
    with pytest.raises(SubmitError, match=r"unknown parameter.*athor.*takes: sources, author"):
        pipeline_arguments(_pipeline, {**given, "athor": "x"})
    with pytest.raises(SubmitError, match=r"missing parameter.*author"):
        pipeline_arguments(_pipeline, {"sources": []})
