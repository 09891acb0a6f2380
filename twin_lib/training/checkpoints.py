"""Checkpoints that outlive the pod: synced to object storage, restored on restart.

A pod's disk goes with the pod, so every checkpoint the Trainer writes is copied to the
run's ``checkpoint_uri`` and a restarted run continues from the newest one, losing at most
one checkpoint interval. A checkpoint counts only once its ``COMPLETE`` marker is written
(after all its files), so a run killed mid-upload resumes from the previous one.
Layout: ``<checkpoint_uri>/<stage>/checkpoint-<step>/`` and ``<checkpoint_uri>/<stage>/final/``
(the finished stage's adapter, so a restart after SFT goes straight to DPO).
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

from accelerate import PartialState
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from twin_lib.training.config import join_uri
from twin_lib.training.transfer import Transfer

log = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def complete_checkpoints(transfer: Transfer, stage_uri: str) -> list[int]:
    """Steps of the checkpoints under ``stage_uri`` whose upload finished, oldest first."""
    steps = set()
    for name in transfer.list_keys(stage_uri):
        folder, _, leaf = name.partition("/")
        match = _CHECKPOINT.match(folder)
        if match and leaf == COMPLETE:
            steps.add(int(match.group(1)))
    return sorted(steps)


def publish_dir(transfer: Transfer, directory: Path, uri: str) -> None:
    """Upload ``directory`` to ``uri`` with the marker last; replaces an earlier copy."""
    transfer.delete_tree(uri)
    transfer.upload_tree(directory, uri)
    with tempfile.TemporaryDirectory() as scratch:
        marker = Path(scratch) / COMPLETE
        marker.write_text("ok\n", encoding="utf-8")
        transfer.upload_file(marker, join_uri(uri, COMPLETE))


def is_published(transfer: Transfer, uri: str) -> bool:
    return COMPLETE in transfer.list_keys(uri)


def restore_latest(transfer: Transfer, stage_uri: str, local_root: Path) -> Path | None:
    """Download the newest complete checkpoint of a stage; None when there is none."""
    steps = complete_checkpoints(transfer, stage_uri)
    if not steps:
        return None
    name = f"checkpoint-{steps[-1]}"
    target = local_root / name
    transfer.download_tree(join_uri(stage_uri, name), target)
    (target / COMPLETE).unlink(missing_ok=True)
    log.info("restored checkpoint", extra={"checkpoint": name, "source": stage_uri})
    return target


class CheckpointSync(TrainerCallback):
    """Uploads each checkpoint the Trainer saves (rank 0) and prunes the oldest remote ones."""

    def __init__(self, transfer: Transfer, stage_uri: str, keep: int) -> None:
        self.transfer = transfer
        self.stage_uri = stage_uri
        self.keep = keep

    def on_save(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: object,
    ) -> None:
        # Every rank writes its own RNG state into the checkpoint: wait for all of them.
        PartialState().wait_for_everyone()
        if state.is_world_process_zero:
            name = f"checkpoint-{state.global_step}"
            publish_dir(self.transfer, Path(args.output_dir) / name, join_uri(self.stage_uri, name))
            log.info(
                "checkpoint synced",
                extra={"checkpoint": name, "step": state.global_step, "target": self.stage_uri},
            )
            for old in complete_checkpoints(self.transfer, self.stage_uri)[: -self.keep]:
                self.transfer.delete_tree(join_uri(self.stage_uri, f"checkpoint-{old}"))
        PartialState().wait_for_everyone()
