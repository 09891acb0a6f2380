"""KFP component of the promotion step: deploy an approved version to KServe.

No ``from __future__ import annotations`` here: KFP reads the real annotation objects.
The pipeline that runs it (review gate, then deploy) comes with the evaluation work; the
component is one call to ``twin_lib.steps.deploy.deploy_version``.
"""

from kfp import dsl
from kfp.dsl import Markdown, Metrics, Output

from twin_lib.settings import load_settings

IMAGE = load_settings().kfp.components_image


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy_model(
    version: str,
    summary: Output[Markdown],
    metrics: Output[Metrics],
    model_name: str = "",
    canary_percent: int = -1,
) -> str:
    """Roll ``version`` out as a canary, check it, promote it (or remove it and fail);
    returns the action taken. ``canary_percent`` < 0: the serving.deployment setting."""
    from pathlib import Path

    from twin_lib.settings import load_settings
    from twin_lib.steps.deploy import deploy_version

    result = deploy_version(
        load_settings(),
        version,
        by="promotion pipeline",
        name=model_name or None,
        canary_percent=canary_percent if canary_percent >= 0 else None,
    )
    Path(summary.path).write_text(result.markdown(), encoding="utf-8")
    metrics.log_metric("duration_s", round(result.duration_s, 1))
    if result.traffic_percent is not None:
        metrics.log_metric("canary_percent", float(result.traffic_percent))
    return str(result.action)
