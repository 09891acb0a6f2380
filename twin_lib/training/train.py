"""Entry point run by torchrun on every rank: LoRA SFT, then optional DPO, then the outputs.

``python -m twin_lib.training.train --config <file or JSON>``, under
``torchrun --nproc_per_node N --module twin_lib.training.train -- --config ...`` for data
parallel training. The same module runs in a PyTorchJob/TrainJob pod on GPUs and on a laptop's
CPU cores; only the precision plan differs. Object-store credentials come from the ``TWIN_*``
environment (a Secret on the cluster), never from the config.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import logging
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate import PartialState
from datasets import Dataset
from peft import PeftModel
from torch.distributed.elastic.multiprocessing.errors import record
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
)

from twin_lib.logs import configure_logging
from twin_lib.settings import TwinSettings, load_settings
from twin_lib.training.arguments import stage_arguments
from twin_lib.training.checkpoints import CheckpointSync, is_published, publish_dir, restore_latest
from twin_lib.training.config import TrainingConfig, join_uri, load_config
from twin_lib.training.data import DPO_COLUMNS, SFT_COLUMNS, fetch_splits, load_splits
from twin_lib.training.diagnostics import ParamChecksum
from twin_lib.training.dpo import dpo_trainer
from twin_lib.training.outputs import (
    StageMetrics,
    TrainingMetrics,
    save_models,
    write_reports,
)
from twin_lib.training.precision import PrecisionPlan, plan_precision
from twin_lib.training.progress import LogProgress
from twin_lib.training.sft import sft_trainer
from twin_lib.training.transfer import Transfer, is_s3

log = logging.getLogger("twin_lib.training")


class RunContext:
    """Per-run paths and handles shared by the stages (same values on every rank)."""

    def __init__(self, config: TrainingConfig, settings: TwinSettings, plan: PrecisionPlan) -> None:
        self.config = config
        self.plan = plan
        self.state = PartialState(cpu=plan.device == "cpu")
        self.transfer = Transfer(settings.minio)
        digest = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]
        self.work = settings.stack.cache_dir / "training" / f"{config.run_name}-{digest}"

    def stage_uri(self, stage: str) -> str:
        return join_uri(self.config.resolved_checkpoint_uri, stage)

    @contextmanager
    def local_main_first(self) -> Iterator[bool]:
        """The body runs on each node's first rank, then the others (after a barrier)."""
        with self.state.local_main_process_first():
            yield self.state.is_local_main_process

    def arguments(self, stage: str) -> dict[str, object]:
        hp = self.config.sft if stage == "sft" else self.config.dpo_stage
        return stage_arguments(
            hp,
            self.plan,
            self.work / stage,
            seed=self.config.seed,
            run_name=f"{self.config.run_name}-{stage}",
            checkpoint_steps=self.config.checkpoint_steps,
            checkpoints_kept=self.config.checkpoints_kept,
        )

    def callbacks(self, stage: str) -> list[TrainerCallback]:
        callbacks: list[TrainerCallback] = [
            CheckpointSync(self.transfer, self.stage_uri(stage), self.config.checkpoints_kept),
            LogProgress(stage),
        ]
        if self.config.param_checksum_dir:
            callbacks.append(ParamChecksum(Path(self.config.param_checksum_dir), stage))
        return callbacks


def prepare_workdir(ctx: RunContext) -> None:
    """Fresh local state: object storage, not this disk, is the source of truth for resumes."""
    with ctx.local_main_first() as first:
        if first:
            for name in ("sft", "dpo", "restore", "out"):
                shutil.rmtree(ctx.work / name, ignore_errors=True)
            ctx.work.mkdir(parents=True, exist_ok=True)


def load_base(
    ctx: RunContext,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base model from a local directory, an ``s3://`` prefix or a hub id, in fp32.

    Weights stay fp32 even for bf16 runs: autocast computes in bf16 while the optimizer
    updates fp32 master weights.
    """
    source = ctx.config.base_model
    if _looks_local(source) and not (Path(source) / "config.json").is_file():
        raise FileNotFoundError(
            f"base model directory {source} has no config.json; set base_model to a Hugging "
            "Face model directory, an s3:// prefix or a model hub id"
        )
    with ctx.local_main_first() as first:
        if is_s3(source):
            local = ctx.work / "base"
            if first and not (local / "config.json").is_file():
                ctx.transfer.download_tree(source, local)
            source = str(local)
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    if not tokenizer.chat_template:
        raise ValueError(
            f"base model {ctx.config.base_model!r} has no chat template in its tokenizer; "
            "training masks non-assistant turns through the template's generation markers: "
            "use a chat model or the platform's base model recipe"
        )
    return model, tokenizer


def _looks_local(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or Path(source).exists()


def fetch_data(
    ctx: RunContext, name: str, uris: dict[str, str], columns: tuple[str, ...]
) -> dict[str, Dataset]:
    with ctx.local_main_first() as first:
        directory = ctx.work / "data" / name
        files = {split: directory / f"{split}.parquet" for split in uris}
        if first:
            files = fetch_splits(ctx.transfer, uris, directory)
        return load_splits(files, columns)


def restore(ctx: RunContext, stage: str) -> Path | None:
    """Each node's first rank downloads the newest synced checkpoint; all ranks get its path."""
    root = ctx.work / "restore" / stage
    with ctx.local_main_first() as first:
        if first:
            restore_latest(ctx.transfer, ctx.stage_uri(stage), root)
        found = sorted(root.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def evaluate_loss(trainer: Trainer, *, adapter: bool = True) -> float | None:
    """Held-out loss on the trainer's eval split, with or without the LoRA adapter."""
    if trainer.eval_dataset is None:
        return None
    model = trainer.accelerator.unwrap_model(trainer.model)
    try:
        if adapter:
            return float(trainer.evaluate()["eval_loss"])
        with model.disable_adapter():
            return float(trainer.evaluate(metric_key_prefix="base")["base_loss"])
    finally:
        release_wrapped(trainer)


def stage_metrics(
    trainer: Trainer, runtime_s: float, resumed: Path | None, eval_loss: float | None
) -> StageMetrics:
    history = trainer.state.log_history
    curve = [(int(row["step"]), float(row["loss"])) for row in history if "loss" in row]
    summary = next((row for row in reversed(history) if "train_loss" in row), {})
    tokens = int(trainer.state.num_input_tokens_seen or 0)
    return StageMetrics(
        steps=trainer.state.global_step,
        train_loss=summary.get("train_loss"),
        eval_loss=eval_loss,
        tokens=tokens,
        tokens_per_s=tokens / runtime_s if runtime_s > 0 and tokens else None,
        runtime_s=runtime_s,
        resumed_from_step=int(resumed.name.split("-")[1]) if resumed else None,
        loss_curve=curve,
    )


def release_wrapped(trainer: Trainer) -> None:
    """Let the next trainer of this model wrap it in its own DDP.

    Accelerate marks every model it prepares, evaluation included, and later skips preparing
    a marked model: a trainer created after an evaluation would train without DDP, so ranks
    would silently diverge. The old DDP wrapper is dropped too, so its gradient hooks do not
    fire in the next stage's backward.
    """
    trainer.accelerator.free_memory()
    trainer.model_wrapped = trainer.model
    for module in trainer.model.modules():
        if hasattr(module, "_is_accelerate_prepared"):
            del module._is_accelerate_prepared
    gc.collect()


def train_stage(ctx: RunContext, trainer: Trainer, stage: str) -> tuple[Path | None, float]:
    """Train one stage from its last synced checkpoint, if any; returns it and the runtime.

    The trainer's DDP wrapper is released afterwards, so the evaluations that follow (and the
    next stage's trainer) see the plain model.
    """
    resumed = restore(ctx, stage)
    log.info("%s starting", stage.upper(), extra={"resume_from": str(resumed) if resumed else None})
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=str(resumed) if resumed else None)
    runtime = time.monotonic() - started
    release_wrapped(trainer)
    return resumed, runtime


def run_sft(
    ctx: RunContext, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase
) -> tuple[Trainer, StageMetrics, float | None]:
    """Train (or, when a previous attempt finished it, reload) the SFT adapter."""
    splits = fetch_data(ctx, "sft", ctx.config.sft_data, SFT_COLUMNS)
    final_uri = join_uri(ctx.stage_uri("sft"), "final")
    if is_published(ctx.transfer, final_uri):
        final = ctx.work / "restore" / "sft-final"
        with ctx.local_main_first() as first:
            if first:
                ctx.transfer.download_tree(final_uri, final)
        policy = PeftModel.from_pretrained(model, final, is_trainable=True)
        trainer = sft_trainer(
            policy, tokenizer, splits, ctx.config.sft, ctx.arguments("sft"), lora=None, callbacks=[]
        )
        recorded = TrainingMetrics.model_validate_json((final / "stage.json").read_text())
        log.info("SFT already finished in an earlier attempt; reusing its adapter")
        return trainer, recorded.sft, recorded.base_eval_loss

    trainer = sft_trainer(
        model,
        tokenizer,
        splits,
        ctx.config.sft,
        ctx.arguments("sft"),
        lora=ctx.config.lora,
        callbacks=ctx.callbacks("sft"),
    )
    resumed, runtime = train_stage(ctx, trainer, "sft")
    base_loss = evaluate_loss(trainer, adapter=False)
    metrics = stage_metrics(trainer, runtime, resumed, evaluate_loss(trainer))
    publish_stage(ctx, trainer, metrics, base_loss)
    return trainer, metrics, base_loss


def publish_stage(
    ctx: RunContext, trainer: Trainer, metrics: StageMetrics, base_loss: float | None
) -> None:
    """Save the finished SFT adapter and its metrics where a restarted run finds them."""
    final = ctx.work / "sft-final"
    trainer.save_model(str(final))
    if ctx.state.is_main_process:
        record = TrainingMetrics(
            run_name=ctx.config.run_name,
            base_model=ctx.config.base_model,
            world_size=ctx.state.num_processes,
            precision=ctx.plan,
            duration_s=metrics.runtime_s,
            base_eval_loss=base_loss,
            final_eval_loss=metrics.eval_loss,
            sft=metrics,
        )
        (final / "stage.json").write_text(record.model_dump_json(), encoding="utf-8")
        publish_dir(ctx.transfer, final, join_uri(ctx.stage_uri("sft"), "final"))
    ctx.state.wait_for_everyone()


def run_dpo(ctx: RunContext, policy: PeftModel, tokenizer: PreTrainedTokenizerBase) -> StageMetrics:
    splits = fetch_data(ctx, "dpo", ctx.config.dpo_data or {}, DPO_COLUMNS)
    trainer = dpo_trainer(
        policy,
        tokenizer,
        splits,
        ctx.config.dpo_stage,
        ctx.arguments("dpo"),
        callbacks=ctx.callbacks("dpo"),
    )
    resumed, runtime = train_stage(ctx, trainer, "dpo")
    evaluation = trainer.evaluate() if trainer.eval_dataset is not None else {}
    metrics = stage_metrics(trainer, runtime, resumed, evaluation.get("eval_loss"))
    metrics.eval_metrics = {k: float(v) for k, v in evaluation.items() if isinstance(v, float)}
    return metrics


def train(config: TrainingConfig, settings: TwinSettings) -> TrainingMetrics | None:
    """The whole run on this rank; the main rank returns the metrics it published."""
    started = time.monotonic()
    plan = plan_precision(config.precision)
    ctx = RunContext(config, settings, plan)
    log.info(
        "training run starting",
        extra={
            "run": config.run_name,
            "rank": ctx.state.process_index,
            "world_size": ctx.state.num_processes,
            "precision": plan.dtype,
            "device": plan.device,
        },
    )
    torch.manual_seed(config.seed)
    prepare_workdir(ctx)
    model, tokenizer = load_base(ctx)
    sft, sft_metrics, base_loss = run_sft(ctx, model, tokenizer)
    policy = sft.accelerator.unwrap_model(sft.model)
    dpo_metrics = run_dpo(ctx, policy, tokenizer) if config.runs_dpo else None
    final_loss = evaluate_loss(sft) if dpo_metrics else sft_metrics.eval_loss
    metrics = TrainingMetrics(
        run_name=config.run_name,
        base_model=config.base_model,
        world_size=ctx.state.num_processes,
        precision=plan,
        duration_s=time.monotonic() - started,
        base_eval_loss=base_loss,
        final_eval_loss=final_loss,
        sft=sft_metrics,
        dpo=dpo_metrics,
    )
    if ctx.state.is_main_process:
        out = ctx.work / "out"
        if "ref" in policy.peft_config:
            policy.delete_adapter("ref")
        save_models(policy, tokenizer, out)
        write_reports(config, metrics, out)
        count = ctx.transfer.upload_tree(out, config.output_uri)
        log.info("outputs published", extra={"files": count, "target": config.output_uri})
    ctx.state.wait_for_everyone()
    return metrics if ctx.state.is_main_process else None


@record
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twin_lib.training.train")
    parser.add_argument("--config", required=True, help="training_config.json path or JSON")
    args = parser.parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level, as_json=settings.log_json)
    train(load_config(args.config), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
