"""Trainer pieces that need no second process: loss mask, precision, config, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.support.training_data import SYSTEM, write_tiny_datasets
from twin_lib.settings import MinioSettings, StageHyperparameters, TrainingSettings
from twin_lib.training.arguments import stage_arguments
from twin_lib.training.checkpoints import COMPLETE, complete_checkpoints, publish_dir
from twin_lib.training.config import TrainingConfig, load_config
from twin_lib.training.data import SFT_COLUMNS, load_splits
from twin_lib.training.precision import plan_precision
from twin_lib.training.sft import sft_trainer
from twin_lib.training.transfer import Transfer


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n", encoding="utf-8")
    return path


def _first_batch(base: Path, tmp_path: Path, *, packing: bool) -> tuple[dict, set[str], object]:
    """The first collated training batch of an SFT trainer over the tiny chat dataset."""
    uris = write_tiny_datasets(tmp_path / "data")
    splits = load_splits({"train": Path(uris["sft"]["train"])}, SFT_COLUMNS)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    hp = StageHyperparameters(max_steps=1, batch_size=4, max_length=128, packing=packing)
    arguments = stage_arguments(
        hp,
        plan_precision("fp32"),
        tmp_path / "sft",
        seed=0,
        run_name="mask",
        checkpoint_steps=10,
        checkpoints_kept=1,
    )
    trainer = sft_trainer(
        model, tokenizer, splits, hp, arguments, lora=TrainingSettings().lora, callbacks=[]
    )
    answers = {row["messages"][-1]["content"] for row in splits["train"]}
    return next(iter(trainer.get_train_dataloader())), answers, tokenizer


def test_collated_batch_labels_only_assistant_tokens(tiny_base_model: Path, tmp_path: Path) -> None:
    batch, answers, tokenizer = _first_batch(tiny_base_model, tmp_path, packing=False)
    for input_ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        kept = tokenizer.decode(input_ids[labels != -100])
        masked = tokenizer.decode(input_ids[labels == -100], skip_special_tokens=True)
        assert kept.endswith("<|im_end|>")  # the model learns to stop
        assert kept.removesuffix("<|im_end|>") in answers
        assert SYSTEM in masked
        assert not any(answer in masked for answer in answers)


def test_packed_batch_keeps_examples_apart_and_masks_prompts(
    tiny_base_model: Path, tmp_path: Path
) -> None:
    batch, answers, tokenizer = _first_batch(tiny_base_model, tmp_path, packing=True)
    assert batch["input_ids"].shape[0] == 1  # several examples in one sequence
    starts = int((batch["position_ids"][0] == 0).sum())
    assert starts >= 2  # positions restart at each example: no attention across examples
    kept = tokenizer.decode(batch["input_ids"][0][batch["labels"][0] != -100])
    assert [part for part in kept.split("<|im_end|>") if part] == [
        part for part in kept.split("<|im_end|>") if part in answers
    ]
    assert kept.count("<|im_end|>") == starts


def test_cpu_with_bf16_matrix_units_uses_bf16_autocast(tmp_path: Path) -> None:
    plan = plan_precision("auto", cuda=False, cpuinfo=_cpuinfo(tmp_path, "amx_bf16 amx_tile"))
    assert (plan.dtype, plan.device, plan.gradient_checkpointing) == ("bf16", "cpu", False)
    assert "amx_bf16" in plan.reason


def test_cpu_without_bf16_units_falls_back_to_fp32_and_refuses_forced_bf16(
    tmp_path: Path,
) -> None:
    cpuinfo = _cpuinfo(tmp_path, "avx512f")
    assert plan_precision("auto", cuda=False, cpuinfo=cpuinfo).dtype == "fp32"
    with pytest.raises(ValueError, match="bf16"):
        plan_precision("bf16", cuda=False, cpuinfo=cpuinfo)


def test_cuda_gets_bf16_checkpointing_and_fused_adamw() -> None:
    plan = plan_precision("auto", cuda=True)
    assert (plan.dtype, plan.gradient_checkpointing, plan.optimizer) == (
        "bf16",
        True,
        "adamw_torch_fused",
    )
    assert plan_precision("fp32", cuda=True).dtype == "fp32"


def test_config_loads_from_file_or_inline_json_and_needs_a_train_split(tmp_path: Path) -> None:
    config = TrainingConfig.from_settings(
        TrainingSettings(),
        base_model="s3://twin-models/base/",
        sft_data={"train": "s3://twin-datasets/instruction/x/train.parquet"},
        output_uri="s3://twin-models/registry/twin/1/",
        run_name="r1",
    )
    path = tmp_path / "training_config.json"
    path.write_text(config.model_dump_json(), encoding="utf-8")
    assert load_config(str(path)) == config == load_config(config.model_dump_json())
    assert config.resolved_checkpoint_uri == "s3://twin-models/registry/twin/1/checkpoints"
    bad = json.loads(config.model_dump_json()) | {"sft_data": {"test": "x.parquet"}}
    with pytest.raises(ValueError, match="'train' split"):
        load_config(json.dumps(bad))
    with pytest.raises(FileNotFoundError, match="--config"):
        load_config(str(tmp_path / "missing.json"))


def test_only_checkpoints_with_their_marker_count(tmp_path: Path) -> None:
    transfer = Transfer(MinioSettings())  # local paths only: MinIO is never contacted
    stage = tmp_path / "checkpoints" / "sft"
    for step in (5, 10):
        source = tmp_path / f"checkpoint-{step}"
        source.mkdir()
        (source / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        publish_dir(transfer, source, str(stage / f"checkpoint-{step}"))
    half_uploaded = stage / "checkpoint-15"
    half_uploaded.mkdir()
    (half_uploaded / "trainer_state.json").write_text("{}")
    assert complete_checkpoints(transfer, str(stage)) == [5, 10]
    assert (stage / "checkpoint-10" / COMPLETE).is_file()
