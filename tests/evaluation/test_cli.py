"""``twin evaluate`` on the served twin's stack: the table, the report path, one summary line,
and a failure line for a version that does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.serving_data import ServedSetup
from twin_lib.cli import app
from twin_lib.settings import to_env


@pytest.fixture
def cli_env(served_setup: ServedSetup, monkeypatch: pytest.MonkeyPatch) -> ServedSetup:
    quick = served_setup.settings.evaluation.model_copy(update={"max_new_tokens": 8})
    for key, value in to_env(
        served_setup.settings.model_copy(update={"evaluation": quick})
    ).items():
        monkeypatch.setenv(key, value)
    return served_setup


def test_evaluate_prints_the_figures_the_report_and_a_summary(
    cli_env: ServedSetup, tmp_path: Path
) -> None:
    model = cli_env.model
    report = tmp_path / "out" / "report.html"
    args = ["evaluate", model.version, "--model", model.name, "--questions", "1"]
    result = CliRunner().invoke(app, [*args, "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "held-out perplexity" in result.output and "style TF-IDF" in result.output
    assert f"report: {report}" in result.output
    assert report.read_text(encoding="utf-8").startswith("<!doctype html>")
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"✔ {model.label} on 1 question(s)") and "hit@" in last


def test_an_unknown_version_is_one_failure_line_naming_the_known_ones(cli_env: ServedSetup) -> None:
    model = cli_env.model
    result = CliRunner().invoke(app, ["evaluate", "v0999", "--model", model.name])
    assert result.exit_code == 1
    assert "v0999" in result.output and model.version in result.output
