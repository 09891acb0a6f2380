"""The rendered pipelines ask Argilla for reviews at the end of ``llm-twin`` and collect them
at the start of ``promote``, with the URL and API key a pod gets from the platform's
ConfigMap and Secret: the settings those variables make choose the Argilla backend."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.support.pipeline_specs import dag_tasks, tasks
from twin_lib.promotion.argilla_reviews import ArgillaReviewBackend
from twin_lib.promotion.reviews import review_backend
from twin_lib.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
PLATFORM_ENV = REPO / "manifests/components/platform-env"


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.mark.parametrize(
    ("compiled", "task", "position"),
    [
        ("llm_twin_pipeline.yaml", "request-review", "last"),
        ("promote_pipeline.yaml", "decide-promotion", "first"),
    ],
)
def test_the_gate_steps_get_argilla_from_the_platform_configmap_and_secret(
    compiled: str,
    task: str,
    position: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    spec, platform = yaml.safe_load_all((REPO / "pipelines" / compiled).read_text())
    graph = dag_tasks(spec)
    depends = {name: set(found.get("dependentTasks", [])) for name, found in graph.items()}
    if position == "last":
        assert not [name for name, needs in depends.items() if task in needs]
        assert "evaluate-model" in depends[task]
    else:
        assert depends[task] == set()
    view = {found.name: found for found in tasks(spec, platform)}[task]
    values = _env_file(PLATFORM_ENV / "endpoints.env") | _env_file(
        PLATFORM_ENV / "secrets/credentials.env.example"
    )
    mapped = view.config_map_env["twin-endpoints"] | view.secret_env["twin-credentials"]
    assert mapped["TWIN_ARGILLA__URL"] == "TWIN_ARGILLA__URL"
    assert view.secret_env["twin-credentials"]["TWIN_ARGILLA__API_KEY"] == "TWIN_ARGILLA__API_KEY"
    # The pod's environment: only what the ConfigMap and Secret give, no .env file.
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("TWIN_")]:
        monkeypatch.delenv(name)
    for key, variable in mapped.items():
        monkeypatch.setenv(variable, values[key])
    backend = review_backend(load_settings())
    assert isinstance(backend, ArgillaReviewBackend)
    assert backend.settings.url == values["TWIN_ARGILLA__URL"]
    assert backend.settings.api_key.get_secret_value() == values["TWIN_ARGILLA__API_KEY"]
