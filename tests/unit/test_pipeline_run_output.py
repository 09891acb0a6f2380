"""``twin pipeline run --local`` shows one line per step, not KFP local's dumps.

Runs real (tiny) pipelines through KFP local execution; no `from __future__ import
annotations` here because KFP reads the component annotations as types.
"""

import re
import warnings

import pytest
from kfp import dsl, local
from kfp.dsl import Dataset, Output
from typer.testing import CliRunner

from twin_lib.cli import app
from twin_lib.cli.kfp_local import step_progress


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _chatty(lines: int, table: Output[Dataset]) -> int:
    for number in range(lines):
        print(f"chatter line {number}")
    from pathlib import Path

    Path(table.path).write_text("x")
    table.metadata["rows"] = lines
    return lines


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def _broken(after: int) -> None:
    print(f"about to fail after {after}")
    raise ValueError("the step's own error")


@dsl.pipeline(name="chatty")
def _chatty_pipeline(lines: int = 300) -> None:
    _chatty(lines=lines).set_memory_limit("1Gi")  # applies on a cluster only


@dsl.pipeline(name="breaks")
def _breaking_pipeline() -> None:
    _broken(after=_chatty(lines=3).outputs["Output"])


@pytest.fixture(scope="module")
def local_runner(tmp_path_factory):
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path_factory.mktemp("kfp")),
    )


def test_one_line_per_step_and_no_dumps(local_runner, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with step_progress() as progress:
            _chatty_pipeline(lines=300)
    out = capsys.readouterr().out
    assert not [w for w in caught if "no effect" in str(w.message)]
    assert [(r.task, r.state) for r in progress.results] == [("chatty", "SUCCESS")]
    assert re.search(r"chatty\s+SUCCESS\s+\d+\.\ds", out)
    assert len(out.splitlines()) <= 3, out
    assert "chatter line" not in out and "Dataset(" not in out


def test_verbose_keeps_kfp_output(local_runner, capsys):
    with step_progress(verbose=True):
        _chatty_pipeline(lines=5)
    out = capsys.readouterr().out
    assert "chatter line 4" in out and "Executing task" in out


def test_failed_step_keeps_its_last_output(local_runner, capsys):
    with pytest.raises(RuntimeError), step_progress() as progress:
        _breaking_pipeline()
    assert [(r.task, r.state) for r in progress.results] == [
        ("chatty", "SUCCESS"),
        ("broken", "FAILURE"),
    ]
    assert any("the step's own error" in line for line in progress.tail)
    assert "chatter line" not in "\n".join(progress.tail)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--param", "bogus=1", "--source", "x", "--author", "A"], "unknown parameter(s) bogus"),
        (["--author", "A"], "missing parameter(s) sources"),
        (["--param", "sources=x", "--params-file", "/no/such.json"], "/no/such.json"),
    ],
)
def test_parameters_are_checked_against_the_pipeline(arguments, message):
    result = CliRunner().invoke(app, ["pipeline", "run", "feature", "--local", *arguments])
    assert result.exit_code == 1
    assert message in result.output


def test_a_cluster_run_refuses_to_train_inside_a_step_pod(monkeypatch):
    """Submitting with the local launcher would run torchrun in a KFP pod: refused up front."""
    monkeypatch.setenv("TWIN_KFP__HOST", "http://kfp.example.test:8888")
    monkeypatch.setenv("TWIN_TRAINING__LAUNCHER", "local")
    result = CliRunner().invoke(app, ["pipeline", "run", "training", "--param", "author=A"])
    assert result.exit_code == 1
    assert "TWIN_TRAINING__LAUNCHER=pytorchjob" in result.output
