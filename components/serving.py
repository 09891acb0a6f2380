"""KFP component of the promotion step: deploy an approved version (KServe, or the local
model server when run through KFP local execution on this machine's stack).

No ``from __future__ import annotations`` here: KFP reads the real annotation objects.
The ``promote`` pipeline runs it after the gate approved; the component is one call to
``twin_lib.steps.deploy.deploy_version``.
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
    target: str = "",
) -> str:
    """Roll ``version`` out as a canary, check it, promote it (or remove it and fail);
    returns the action taken. ``canary_percent`` < 0: the serving.deployment setting;
    ``target`` kserve or local, empty: serving.deployment.target."""
    from pathlib import Path

    from twin_lib.settings import DeploymentSettings, load_settings
    from twin_lib.steps.deploy import deploy_version

    settings = load_settings()
    if target:  # validated like the setting: an unknown target fails here, not later
        deployment = settings.serving.deployment.model_dump()
        settings.serving.deployment = DeploymentSettings.model_validate(
            {**deployment, "target": target}
        )
    result = deploy_version(
        settings,
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
