"""Backend choice and the local backend: a failed local run must fail the launch step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twin_lib.k8s.training_jobs import ClusterJobSpec
from twin_lib.settings import TwinSettings
from twin_lib.steps.launch import launch_training
from twin_lib.training.config import TrainingConfig
from twin_lib.training.launchers import (
    ClusterLauncher,
    LaunchResult,
    LocalLauncher,
    LocalSpec,
    launcher_for,
)
from twin_lib.training.local_launch import TrainingFailedError, child_env, process_count


def _settings(launcher: str, **training: object) -> TwinSettings:
    return TwinSettings(training={"launcher": launcher, **training})  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", ["pytorchjob", "trainjob"])
def test_cluster_backends_get_the_cluster_spec(backend: str) -> None:
    settings = _settings(backend, cluster={"nodes": 4, "gpus_per_node": 8})
    launcher, spec = launcher_for(settings, api_factory=lambda: None)  # type: ignore[arg-type,return-value]
    assert isinstance(launcher, ClusterLauncher)
    assert launcher.backend == backend
    assert launcher.namespace == settings.kubernetes.namespace
    assert isinstance(spec, ClusterJobSpec)
    assert (spec.nodes, spec.gpus_per_node) == (4, 8)
    assert spec is not settings.training.cluster


def test_local_backend_gets_the_local_spec() -> None:
    launcher, spec = launcher_for(_settings("local", local_processes=3, local_timeout_s=60))
    assert isinstance(launcher, LocalLauncher)
    assert spec == LocalSpec(processes=3, timeout_s=60)


def test_unknown_backend_is_refused_by_the_settings() -> None:
    with pytest.raises(ValueError, match="launcher"):
        _settings("slurm")


def test_job_spec_output_is_the_created_object(tmp_path: Path) -> None:
    body = {"kind": "PyTorchJob", "metadata": {"name": "twin-1"}}
    result = LaunchResult(backend="pytorchjob", output_uri="s3://m/x/", duration_s=1, job_spec=body)
    assert json.loads(result.write_job_spec(tmp_path / "out" / "job.json").read_text()) == body
    local = LaunchResult(backend="local", output_uri="/tmp/x", duration_s=1)
    assert json.loads(local.write_job_spec(tmp_path / "local.json").read_text()) == {}


def test_local_run_past_its_timeout_fails_the_step(tmp_path: Path) -> None:
    """A real torchrun process group, stopped at the spec's deadline (one second here, long
    before the trainer has even imported torch): the step raises and writes no job spec."""
    config = TrainingConfig(
        base_model=str(tmp_path / "base"),
        sft_data={"train": str(tmp_path / "train.parquet")},
        output_uri=str(tmp_path / "out"),
    )
    settings = _settings("local", local_processes=1, local_timeout_s=1)
    with pytest.raises(TrainingFailedError, match="ran past its timeout of 1 s"):
        launch_training(settings, config, job_spec_path=tmp_path / "job.json")
    assert not (tmp_path / "job.json").exists()


def test_local_run_on_gpus_is_not_forced_onto_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Accelerate put the model on the CPU under a gloo group while the plan said CUDA (seen
    on an H100: DDP failed with "No backend type associated with device type cpu")."""
    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)  # set by in-process CPU runs
    settings = TwinSettings(_env_file=None)
    assert child_env(settings, gpus=0)["ACCELERATE_USE_CPU"] == "true"
    assert "ACCELERATE_USE_CPU" not in child_env(settings, gpus=1)


def test_local_run_uses_at_most_one_process_per_gpu() -> None:
    assert process_count(2, gpus=1) == 1
    assert process_count(2, gpus=4) == 2
    assert process_count(2, gpus=0) == 2
