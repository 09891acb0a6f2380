"""KFP component of the evaluation step: a trained version against its base model.

No ``from __future__ import annotations`` here: KFP reads the real annotation objects.
One call to ``twin_lib.steps.evaluation.evaluate_version``; the figures become the task's
``Metrics`` and the report its ``HTML`` output, which the KFP UI shows as is (it is one
self-contained page).
"""

from kfp import dsl
from kfp.dsl import HTML, Metrics, Output

from twin_lib.settings import load_settings

IMAGE = load_settings().kfp.components_image


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate_model(
    report: Output[HTML],
    metrics: Output[Metrics],
    version: str = "",
    model_name: str = "",
) -> str:
    """Evaluate ``version`` (empty: the newest registered) of ``model_name`` (empty: the
    default model); returns the version evaluated, for the review step that follows."""
    from pathlib import Path

    from twin_lib.settings import load_settings
    from twin_lib.steps.evaluation import evaluate_version

    result = evaluate_version(
        load_settings(),
        version or None,
        name=model_name or None,
        report_path=Path(report.path),
    )
    for name, value in result.metrics().items():
        metrics.log_metric(name, value)
    return result.version
