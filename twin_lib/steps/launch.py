"""The launch step: run one training config on the configured backend and record the job.

A KFP component is one call: ``launch_training(settings, config, job_spec_path=...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twin_lib.settings import TwinSettings
from twin_lib.training.config import TrainingConfig
from twin_lib.training.launchers import ApiFactory, LaunchResult, launcher_for


def launch_training(
    settings: TwinSettings,
    config: TrainingConfig,
    *,
    spec_overrides: dict[str, Any] | None = None,
    job_spec_path: Path | None = None,
    api_factory: ApiFactory | None = None,
) -> LaunchResult:
    """Train with ``settings.training.launcher``; raises when the run fails or times out.

    ``spec_overrides`` are per-run placement parameters (nodes, gpus_per_node,
    node_selector, tolerations, timeout_s, ... for a cluster; processes for a local run),
    validated like the settings they override. The created job is written to
    ``job_spec_path`` when given, so the pipeline keeps exactly what ran.
    """
    launcher, spec = launcher_for(settings, api_factory)
    if spec_overrides:
        spec = type(spec).model_validate({**spec.model_dump(), **spec_overrides})
    result = launcher.launch(config, spec)
    if job_spec_path is not None:
        result.write_job_spec(job_spec_path)
    return result
