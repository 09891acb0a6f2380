from __future__ import annotations

from pipelines.catalog import PIPELINES
from pipelines.feature_pipeline import COMPILED, compile_pipeline, feature_pipeline


def _spec(text: str) -> list[str]:
    """The YAML without KFP's header comment, whose dict ordering varies between processes."""
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_compiled_yaml_is_current(tmp_path):
    fresh = compile_pipeline(tmp_path / "feature_pipeline.yaml").read_text()
    assert _spec(fresh) == _spec(COMPILED.read_text()), (
        "pipelines/feature_pipeline.yaml is stale: run `python -m pipelines.feature_pipeline`"
    )


def test_catalog_exposes_the_feature_pipeline():
    assert PIPELINES["feature"] is feature_pipeline


def test_every_step_uses_the_project_image_and_reports_to_the_ui():
    text = COMPILED.read_text()
    assert text.count("image: ghcr.io/llm-twin/components:") == 8
    assert "system.HTML" in text and "system.Metrics" in text and "system.Dataset" in text
    assert "pip install" not in text
