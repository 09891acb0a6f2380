"""The one typed description of a training run.

The same JSON document is the KFP parameter, the file torchrun's ranks read, and the
``training_config.json`` saved next to the model, so a model can always be retrained exactly.
Credentials are not part of it: ranks read the object store's settings from the environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from twin_lib.settings import LoraSettings, StageHyperparameters, TrainingSettings

Precision = Literal["auto", "bf16", "fp32"]

__all__ = [
    "LoraSettings",
    "Precision",
    "StageHyperparameters",
    "TrainingConfig",
    "load_config",
]


class TrainingConfig(BaseModel):
    """What to train from, on which data, how, and where the results go.

    URIs are either ``s3://bucket/key`` (read and written through MinIO) or local paths.
    """

    base_model: str = Field(description="a local directory, an s3:// prefix or a model hub id")
    sft_data: dict[str, str] = Field(description="split -> Parquet URI; needs 'train'")
    dpo_data: dict[str, str] | None = Field(
        default=None, description="split -> Parquet URI of preference pairs; None skips DPO"
    )
    output_uri: str = Field(description="s3:// prefix or local directory for every output")
    checkpoint_uri: str | None = Field(
        default=None, description="s3:// prefix or local directory; None = <output_uri>/checkpoints"
    )
    lora: LoraSettings = Field(default_factory=LoraSettings)
    sft: StageHyperparameters = Field(default_factory=StageHyperparameters)
    dpo: StageHyperparameters | None = None
    precision: Precision = "auto"
    seed: int = 42
    run_name: str = "twin"
    checkpoint_steps: int = Field(default=50, ge=1)
    checkpoints_kept: int = Field(default=2, ge=1)
    base_model_note: str | None = Field(
        default=None, description="said in the model card about where the base model came from"
    )
    param_checksum_dir: str | None = Field(
        default=None,
        description="debugging: every rank writes a checksum of its trainable parameters here "
        "after each optimizer step, to prove data-parallel replicas stay identical",
    )

    @model_validator(mode="after")
    def _check(self) -> TrainingConfig:
        if "train" not in self.sft_data:
            raise ValueError(f"sft_data needs a 'train' split, got {sorted(self.sft_data)}")
        if self.dpo_data is not None and "train" not in self.dpo_data:
            raise ValueError(f"dpo_data needs a 'train' split, got {sorted(self.dpo_data)}")
        return self

    @property
    def resolved_checkpoint_uri(self) -> str:
        return self.checkpoint_uri or join_uri(self.output_uri, "checkpoints")

    @property
    def runs_dpo(self) -> bool:
        return self.dpo_data is not None

    @property
    def dpo_stage(self) -> StageHyperparameters:
        """DPO hyperparameters; a lower learning rate than SFT when none were given."""
        return self.dpo or StageHyperparameters(learning_rate=5e-6, max_length=self.sft.max_length)

    @classmethod
    def from_settings(
        cls,
        settings: TrainingSettings,
        *,
        base_model: str,
        sft_data: dict[str, str],
        output_uri: str,
        dpo_data: dict[str, str] | None = None,
        **overrides: object,
    ) -> TrainingConfig:
        """A run's config: the platform's training defaults plus this run's inputs and outputs."""
        values: dict[str, object] = {
            "base_model": base_model,
            "sft_data": sft_data,
            "dpo_data": dpo_data,
            "output_uri": output_uri,
            "lora": settings.lora,
            "sft": settings.sft,
            "dpo": settings.dpo,
            "precision": settings.precision,
            "seed": settings.seed,
            "checkpoint_steps": settings.checkpoint_steps,
            "checkpoints_kept": settings.checkpoints_kept,
        }
        values.update(overrides)
        return cls.model_validate(values)


def join_uri(base: str, *parts: str) -> str:
    """``base`` and ``parts`` joined with single slashes (URIs and local paths alike)."""
    return "/".join([base.rstrip("/"), *(part.strip("/") for part in parts)])


def load_config(source: str) -> TrainingConfig:
    """A config from a JSON file path or an inline JSON document (``--config``)."""
    text = source.strip()
    if not text.startswith("{"):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(
                f"training config {source!r} is neither a JSON document nor an existing file; "
                "pass --config with a path to training_config.json or the JSON itself"
            )
        text = path.read_text(encoding="utf-8")
    return TrainingConfig.model_validate(json.loads(text))
