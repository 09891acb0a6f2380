"""Evidence that data-parallel replicas stay identical: per-rank checksums of trainable weights.

Off unless ``param_checksum_dir`` is set. Each rank writes one line per optimizer step; equal
lines across ranks show gradients were averaged before every update (replicas trained on
different batches without synchronisation diverge after the first step).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


def trainable_checksum(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        if parameter.requires_grad:
            digest.update(name.encode())
            digest.update(parameter.detach().to(torch.float32).cpu().numpy().tobytes())
    return digest.hexdigest()


class ParamChecksum(TrainerCallback):
    """Appends ``{"step", "checksum", "world_size"}`` to ``<dir>/<stage>-rank<rank>.jsonl``."""

    def __init__(self, directory: Path, stage: str) -> None:
        self.directory = directory
        self.stage = stage

    def on_step_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: torch.nn.Module | None = None,
        **kwargs: object,
    ) -> None:
        if model is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        line = {
            "step": state.global_step,
            "checksum": trainable_checksum(model),
            "world_size": args.world_size,
        }
        path = self.directory / f"{self.stage}-rank{args.process_index}.jsonl"
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
