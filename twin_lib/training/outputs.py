"""What a finished run leaves behind: adapter, merged model, metrics, loss plot, model card.

``merged/`` is a plain Hugging Face model directory (safetensors, tokenizer with the exact chat
template training used) that a serving runtime loads without peft; ``adapter/`` is the small
LoRA delta for whoever wants to stack or compare adapters.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from peft import PeftModel
from pydantic import BaseModel, Field
from transformers import PreTrainedTokenizerBase

from twin_lib.training.config import TrainingConfig
from twin_lib.training.precision import PrecisionPlan


class StageMetrics(BaseModel):
    """One stage's training record (SFT or DPO)."""

    steps: int
    train_loss: float | None
    eval_loss: float | None = Field(description="held-out loss right after this stage")
    tokens: int
    tokens_per_s: float | None
    runtime_s: float
    resumed_from_step: int | None = None
    loss_curve: list[tuple[int, float]] = Field(default_factory=list)
    eval_metrics: dict[str, float] = Field(default_factory=dict)


class TrainingMetrics(BaseModel):
    """``metrics.json``: the base model and the trained model scored on the same held-out split."""

    run_name: str
    base_model: str
    world_size: int
    precision: PrecisionPlan
    duration_s: float
    base_eval_loss: float | None
    final_eval_loss: float | None
    sft: StageMetrics
    dpo: StageMetrics | None = None


class TrainingResult(BaseModel):
    """What a launcher hands back: where the outputs are and the headline numbers."""

    output_uri: str
    run_name: str
    world_size: int
    precision: str
    base_eval_loss: float | None
    final_eval_loss: float | None
    sft_steps: int
    dpo_steps: int | None
    duration_s: float

    @classmethod
    def from_metrics(cls, output_uri: str, metrics: TrainingMetrics) -> TrainingResult:
        return cls(
            output_uri=output_uri,
            run_name=metrics.run_name,
            world_size=metrics.world_size,
            precision=metrics.precision.dtype,
            base_eval_loss=metrics.base_eval_loss,
            final_eval_loss=metrics.final_eval_loss,
            sft_steps=metrics.sft.steps,
            dpo_steps=metrics.dpo.steps if metrics.dpo else None,
            duration_s=metrics.duration_s,
        )


def save_models(policy: PeftModel, tokenizer: PreTrainedTokenizerBase, out_dir: Path) -> None:
    """``adapter/`` and ``merged/``; merging folds the adapter into the base weights in place."""
    policy.save_pretrained(out_dir / "adapter", selected_adapters=["default"])
    tokenizer.save_pretrained(out_dir / "adapter")
    merged = policy.merge_and_unload()
    merged.save_pretrained(out_dir / "merged", safe_serialization=True)
    tokenizer.save_pretrained(out_dir / "merged")


def loss_plot_html(metrics: TrainingMetrics) -> str:
    """A self-contained page (PNG embedded as base64) for the KFP UI's HTML viewer."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    stages = [("SFT", metrics.sft), ("DPO", metrics.dpo)]
    stages = [(name, stage) for name, stage in stages if stage is not None]
    figure, axes = plt.subplots(1, len(stages), figsize=(6 * len(stages), 4), squeeze=False)
    for axis, (name, stage) in zip(axes[0], stages, strict=True):
        if stage.loss_curve:
            steps, losses = zip(*stage.loss_curve, strict=True)
            axis.plot(steps, losses, label="train loss")
        if name == "SFT" and metrics.base_eval_loss is not None:
            axis.axhline(
                metrics.base_eval_loss, color="grey", linestyle="--", label="base held-out"
            )
        if stage.eval_loss is not None:
            axis.axhline(stage.eval_loss, color="green", linestyle=":", label="held-out after")
        axis.set_title(f"{name} loss")
        axis.set_xlabel("optimizer step")
        axis.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    image = base64.b64encode(buffer.getvalue()).decode("ascii")
    title = html.escape(f"Training loss: {metrics.run_name}")
    summary = html.escape(
        f"held-out loss: base {_fmt(metrics.base_eval_loss)} -> trained "
        f"{_fmt(metrics.final_eval_loss)}; precision {metrics.precision.dtype}; "
        f"world size {metrics.world_size}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><h1>{title}</h1><p>{summary}</p>"
        f"<img alt='loss curves' src='data:image/png;base64,{image}'></body></html>\n"
    )


def model_card(config: TrainingConfig, metrics: TrainingMetrics) -> str:
    """README.md of the model: what it was trained from, how, and how well."""
    lines = [
        f"# {config.run_name}",
        "",
        "A LoRA fine-tune (supervised on the author's text"
        + (", then DPO towards it" if metrics.dpo else "")
        + ") of the base model below. `merged/` loads without peft; `adapter/` is the LoRA delta.",
        "",
        "## Base model",
        "",
        f"`{config.base_model}`",
    ]
    if config.base_model_note:
        lines += ["", config.base_model_note]
    lines += ["", "## Data", ""]
    lines += [f"- SFT {split}: `{uri}`" for split, uri in sorted(config.sft_data.items())]
    lines += [f"- DPO {split}: `{uri}`" for split, uri in sorted((config.dpo_data or {}).items())]
    lines += [
        "",
        "## Training",
        "",
        f"- precision: {metrics.precision.dtype} on {metrics.precision.device} "
        f"({metrics.precision.reason})",
        f"- processes: {metrics.world_size}; duration {metrics.duration_s:.0f} s",
        f"- LoRA: r={config.lora.r}, alpha={config.lora.alpha}, dropout={config.lora.dropout}, "
        f"targets {', '.join(config.lora.target_modules)}",
        f"- SFT: {_stage_line(metrics.sft)}; hyperparameters `{config.sft.model_dump_json()}`",
    ]
    if metrics.dpo:
        lines.append(
            f"- DPO: {_stage_line(metrics.dpo)}; hyperparameters "
            f"`{config.dpo_stage.model_dump_json()}`"
        )
    lines += [
        "",
        "## Held-out loss (SFT test split, assistant tokens only)",
        "",
        "| model | loss |",
        "| --- | --- |",
        f"| base | {_fmt(metrics.base_eval_loss)} |",
        f"| this model | {_fmt(metrics.final_eval_loss)} |",
        "",
        "Chat template: the tokenizer's own (`tokenizer_config.json`/`chat_template.jinja`), "
        "the one used in training.",
        "",
    ]
    return "\n".join(lines)


def write_reports(config: TrainingConfig, metrics: TrainingMetrics, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(metrics.model_dump_json(indent=2), encoding="utf-8")
    (out_dir / "loss.html").write_text(loss_plot_html(metrics), encoding="utf-8")
    (out_dir / "README.md").write_text(model_card(config, metrics), encoding="utf-8")
    (out_dir / "training_config.json").write_text(
        json.dumps(config.model_dump(mode="json"), indent=2), encoding="utf-8"
    )


def _stage_line(stage: StageMetrics) -> str:
    speed = f"{stage.tokens_per_s:.0f} tokens/s" if stage.tokens_per_s else "n/a tokens/s"
    resumed = f", resumed from step {stage.resumed_from_step}" if stage.resumed_from_step else ""
    return f"{stage.steps} steps, {stage.tokens} tokens, {speed}{resumed}"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
