"""KFP components of the promotion gate: ask for reviews, then decide.

No ``from __future__ import annotations`` here: KFP reads the real annotation objects.
``request_review`` ends the training pipeline; ``decide_promotion`` starts the promote
pipeline, whose deploy step (``components.serving.deploy_model``) runs only when the
outcome is ``approve``. Each is one call into ``twin_lib.steps.promotion``.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Markdown, Metrics, Output

from twin_lib.settings import load_settings

IMAGE = load_settings().kfp.components_image


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def request_review(
    summary: Output[Markdown],
    version: str = "",
    model_name: str = "",
    review_backend: str = "",
) -> str:
    """Put the candidate's evaluated answers in front of reviewers; returns the backend.
    Empty strings: the newest candidate, the default model, ``gate.review_backend``."""
    from pathlib import Path

    from twin_lib.settings import load_settings
    from twin_lib.steps.promotion import request_review as request

    found = request(
        load_settings(),
        version or None,
        name=model_name or None,
        backend=review_backend or None,
    )
    Path(summary.path).write_text(
        f"## {found.model} {found.version}: review requested ({found.backend})\n\n"
        f"{found.samples} sample(s); {found.note}\n",
        encoding="utf-8",
    )
    return found.backend


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def decide_promotion(
    summary: Output[Markdown],
    metrics: Output[Metrics],
    version: str = "",
    model_name: str = "",
    review_backend: str = "",
) -> NamedTuple("Gate", [("outcome", str), ("version", str)]):
    """Decide on a candidate and record approve or reject; ``outcome`` is approve, reject,
    wait, or none when no candidate waits (a scheduled run with nothing to do)."""
    from pathlib import Path
    from typing import NamedTuple

    from twin_lib.settings import load_settings
    from twin_lib.steps.promotion import NoCandidateError, decide_version

    gate = NamedTuple("Gate", [("outcome", str), ("version", str)])  # noqa: UP014
    try:
        decision = decide_version(
            load_settings(),
            version or None,
            by="promote pipeline",
            name=model_name or None,
            backend=review_backend or None,
        )
    except NoCandidateError as nothing:
        Path(summary.path).write_text(f"Nothing to decide: {nothing}\n", encoding="utf-8")
        return gate("none", "")
    Path(summary.path).write_text(decision.markdown(), encoding="utf-8")
    metrics.log_metric("approved", float(decision.outcome == "approve"))
    metrics.log_metric("human_review", float(decision.human_review))
    for check in decision.checks:
        if check.value is not None:
            metrics.log_metric(check.name, float(check.value))
    return gate(str(decision.outcome), decision.version)
