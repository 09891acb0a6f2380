"""Direct preference optimisation that starts from the SFT adapter.

``DPOTrainer`` gets the SFT ``PeftModel`` and no ``ref_model``: it copies the SFT adapter as a
frozen reference adapter, so the policy is pulled towards the author's text relative to the
SFT model, not to the bare base model, and no second copy of the base weights is loaded.
"""

from __future__ import annotations

from typing import Any

from datasets import Dataset
from peft import PeftModel
from transformers import PreTrainedTokenizerBase, PrinterCallback, TrainerCallback
from trl import DPOConfig, DPOTrainer

from twin_lib.settings import StageHyperparameters


def dpo_trainer(
    policy: PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    splits: dict[str, Dataset],
    hp: StageHyperparameters,
    arguments: dict[str, Any],
    *,
    callbacks: list[TrainerCallback],
) -> DPOTrainer:
    args = DPOConfig(**arguments, beta=hp.beta)
    trainer = DPOTrainer(
        model=policy,
        ref_model=None,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=splits.get("test"),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # progress is logged by LogProgress
    return trainer
