"""Training progress as structured log records instead of the Trainer's printed dicts."""

from __future__ import annotations

import logging

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

log = logging.getLogger("twin_lib.training.progress")


class LogProgress(TrainerCallback):
    """One ``key=value`` (or JSON) record per Trainer log event, on the main rank only."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: object,
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        fields = {key.replace("/", "_"): value for key, value in logs.items()}
        log.info(
            f"{self.stage} progress",
            extra={"stage": self.stage, "step": state.global_step, "of": state.max_steps, **fields},
        )
