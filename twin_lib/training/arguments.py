"""Trainer arguments shared by the SFT and DPO stages, from one stage's hyperparameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twin_lib.settings import StageHyperparameters
from twin_lib.training.precision import PrecisionPlan


def stage_arguments(
    hp: StageHyperparameters,
    plan: PrecisionPlan,
    output_dir: Path,
    *,
    seed: int,
    run_name: str,
    checkpoint_steps: int,
    checkpoints_kept: int,
) -> dict[str, Any]:
    """Keyword arguments for ``SFTConfig`` / ``DPOConfig`` (both are ``TrainingArguments``).

    Evaluation is run explicitly by the entry point (before and after training, with and
    without the adapter), so the Trainer's own evaluation schedule stays off.
    """
    return {
        "output_dir": str(output_dir),
        "run_name": run_name,
        "seed": seed,
        "data_seed": seed,
        "num_train_epochs": hp.epochs,
        "max_steps": hp.max_steps,
        "learning_rate": hp.learning_rate,
        "lr_scheduler_type": hp.lr_scheduler,
        "warmup_steps": hp.warmup_ratio,
        "weight_decay": hp.weight_decay,
        "max_grad_norm": hp.max_grad_norm,
        "per_device_train_batch_size": hp.batch_size,
        "per_device_eval_batch_size": hp.batch_size,
        "gradient_accumulation_steps": hp.gradient_accumulation,
        "max_length": hp.max_length,
        "bf16": plan.bf16,
        "use_cpu": plan.device == "cpu",
        "ddp_find_unused_parameters": False,
        "activation_checkpointing": plan.gradient_checkpointing,
        "optim": plan.optimizer,
        "save_strategy": "steps",
        "save_steps": checkpoint_steps,
        "save_total_limit": checkpoints_kept,
        "eval_strategy": "no",
        "logging_steps": 1,
        "include_num_input_tokens_seen": "non_padding",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }
