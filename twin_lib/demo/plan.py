"""What ``twin demo`` runs: the platform's settings, sized for a laptop and loopback sources.

Only the demo's own knobs (``TWIN_DEMO__*``) change anything: crawling may reach the loopback
article server, training and evaluation are short, and the promote step deploys to the local
model server. Everything else (base model, endpoints, thresholds) is the user's settings.
"""

from __future__ import annotations

from pathlib import Path

from twin_lib.settings import StageHyperparameters, TwinSettings


def demo_workdir(settings: TwinSettings) -> Path:
    return settings.demo.workdir or settings.stack.state_dir / "demo"


def _stage(stage: StageHyperparameters, steps: int, settings: TwinSettings) -> StageHyperparameters:
    return stage.model_copy(
        update={"max_steps": steps, "max_length": settings.demo.max_length, "warmup_ratio": 0.0}
    )


def demo_settings(settings: TwinSettings) -> TwinSettings:
    """``settings`` with the demo's sizes applied (see the module)."""
    demo = settings.demo
    crawl = settings.features.crawl.model_copy(
        update={"allow_private_addresses": True, "rate_limit_per_host_s": 0.0}
    )
    training = settings.training
    sft = _stage(training.sft, demo.sft_steps, settings).model_copy(
        update={"learning_rate": demo.learning_rate}
    )
    dpo = (
        _stage(training.dpo or StageHyperparameters(learning_rate=5e-6), demo.dpo_steps, settings)
        if demo.dpo_steps
        else None
    )
    responder = settings.datasets.responder.model_copy(
        update={
            "max_new_tokens": demo.responder_tokens,
            "min_new_tokens": min(8, demo.responder_tokens),
            "do_sample": True,
        }
    )
    deployment = settings.serving.deployment.model_copy(update={"target": "local"})
    return settings.model_copy(
        update={
            "features": settings.features.model_copy(update={"crawl": crawl}),
            "datasets": settings.datasets.model_copy(update={"responder": responder}),
            "training": training.model_copy(update={"sft": sft, "dpo": dpo}),
            "evaluation": settings.evaluation.model_copy(
                update={
                    "max_questions": demo.evaluation_questions,
                    "max_new_tokens": demo.answer_tokens,
                }
            ),
            "serving": settings.serving.model_copy(
                update={"deployment": deployment, "default_max_tokens": demo.answer_tokens}
            ),
        }
    )
