"""Supervised fine-tuning with a LoRA adapter: loss on the assistant's (the author's) turns only."""

from __future__ import annotations

from typing import Any

from datasets import Dataset
from peft import LoraConfig, PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase, PrinterCallback, TrainerCallback
from trl import SFTConfig, SFTTrainer

from twin_lib.settings import LoraSettings, StageHyperparameters


def lora_config(lora: LoraSettings) -> LoraConfig:
    targets: str | list[str] = (
        "all-linear" if lora.target_modules == ["all-linear"] else list(lora.target_modules)
    )
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )


def sft_trainer(
    model: PreTrainedModel | PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    splits: dict[str, Dataset],
    hp: StageHyperparameters,
    arguments: dict[str, Any],
    *,
    lora: LoraSettings | None,
    callbacks: list[TrainerCallback],
) -> SFTTrainer:
    """An ``SFTTrainer`` over chat ``messages``; ``lora=None``: ``model`` is a PeftModel already.

    ``assistant_only_loss`` relies on the ``{% generation %}`` markers of the tokenizer's chat
    template: system prompts and instructions never contribute to the loss.
    """
    args = SFTConfig(**arguments, packing=hp.packing, assistant_only_loss=True)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=splits.get("test"),
        processing_class=tokenizer,
        peft_config=lora_config(lora) if lora is not None else None,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # progress is logged by LogProgress
    return trainer
