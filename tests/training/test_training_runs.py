"""Real 2-process torchrun runs on CPU against MinIO: sync, outputs, learning, kill and resume."""

from __future__ import annotations

import base64
import json
import re
import signal
import time
import uuid
from pathlib import Path

import psutil
import pytest
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.support.training_data import write_tiny_datasets
from twin_lib.settings import StageHyperparameters, TwinSettings
from twin_lib.storage import ObjectStore
from twin_lib.training.chat_template import CHAT_TEMPLATE
from twin_lib.training.checkpoints import complete_checkpoints
from twin_lib.training.config import TrainingConfig
from twin_lib.training.local_launch import LocalRun, TrainingFailedError, read_result, run_local
from twin_lib.training.outputs import TrainingMetrics, TrainingResult
from twin_lib.training.transfer import Transfer, split_s3

pytestmark = pytest.mark.integration

TIMEOUT_S = 300


def _upload_inputs(
    store: ObjectStore, settings: TwinSettings, base: Path, data_dir: Path
) -> tuple[str, dict[str, dict[str, str]]]:
    """Base model and datasets as a pod would see them: s3:// URIs only."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    transfer = Transfer(settings.minio)
    base_uri = f"s3://{settings.minio.models_bucket}/{prefix}/base"
    transfer.upload_tree(base, base_uri)
    uris: dict[str, dict[str, str]] = {}
    for kind, splits in write_tiny_datasets(data_dir).items():
        uris[kind] = {}
        for split, path in splits.items():
            uri = f"s3://{settings.minio.datasets_bucket}/{prefix}/{kind}/{split}.parquet"
            transfer.upload_file(Path(path), uri)
            uris[kind][split] = uri
    return base_uri, uris


def _config(base_uri: str, uris: dict[str, dict[str, str]], **overrides: object) -> TrainingConfig:
    values: dict[str, object] = {
        "base_model": base_uri,
        "sft_data": uris["sft"],
        "output_uri": f"s3://twin-models/test-runs/{uuid.uuid4().hex[:8]}",
        "sft": StageHyperparameters(
            max_steps=16, batch_size=4, learning_rate=3e-3, max_length=64, warmup_ratio=0.0
        ),
        "checkpoint_steps": 8,
        "precision": "auto",
        "run_name": "test-twin",
    }
    return TrainingConfig.model_validate(values | overrides)


@pytest.fixture(scope="module")
def inputs(
    stack_settings: TwinSettings,
    object_store: ObjectStore,
    tiny_base_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, dict[str, dict[str, str]]]:
    return _upload_inputs(
        object_store, stack_settings, tiny_base_model, tmp_path_factory.mktemp("data")
    )


@pytest.fixture(scope="module")
def full_run(
    stack_settings: TwinSettings,
    inputs: tuple[str, dict[str, dict[str, str]]],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[TrainingConfig, TrainingResult, Path]:
    """One SFT + DPO run with 2 ranks, checksumming the trainable weights after every step."""
    base_uri, uris = inputs
    checksums = tmp_path_factory.mktemp("checksums")
    config = _config(
        base_uri,
        uris,
        dpo_data=uris["dpo"],
        dpo=StageHyperparameters(
            max_steps=3, batch_size=4, learning_rate=1e-4, max_length=64, warmup_ratio=0.0
        ),
        param_checksum_dir=str(checksums),
    )
    result = run_local(config, 2, settings=stack_settings, timeout_s=TIMEOUT_S)
    return config, result, checksums


def test_two_ranks_keep_identical_weights_after_every_step(
    full_run: tuple[TrainingConfig, TrainingResult, Path],
) -> None:
    config, result, checksums = full_run
    assert result.world_size == 2
    for stage, steps in (("sft", config.sft.max_steps), ("dpo", 3)):
        ranks = [
            [json.loads(line) for line in (checksums / f"{stage}-rank{rank}.jsonl").open()]
            for rank in (0, 1)
        ]
        assert [row["step"] for row in ranks[0]] == list(range(1, steps + 1))
        assert ranks[0] == ranks[1]
        assert {row["world_size"] for row in ranks[0]} == {2}
        assert len({row["checksum"] for row in ranks[0]}) == steps  # the weights did move


def test_sft_then_dpo_publishes_every_output(
    full_run: tuple[TrainingConfig, TrainingResult, Path],
    stack_settings: TwinSettings,
    tmp_path: Path,
) -> None:
    config, result, _ = full_run
    transfer = Transfer(stack_settings.minio)
    names = set(transfer.list_keys(config.output_uri))
    expected = {
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "merged/model.safetensors",
        "merged/config.json",
        "merged/tokenizer.json",
        "metrics.json",
        "loss.html",
        "README.md",
        "training_config.json",
    }
    assert expected <= names
    merged = transfer.download_tree(f"{config.output_uri}/merged", tmp_path / "merged")
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert tokenizer.chat_template == CHAT_TEMPLATE
    assert AutoModelForCausalLM.from_pretrained(merged).num_parameters() > 0
    with safe_open(merged / "model.safetensors", framework="pt") as weights:
        assert not [n for n in weights.keys() if "lora" in n]  # noqa: SIM118 - no __iter__
    out = transfer.download_tree(config.output_uri, tmp_path / "out")
    metrics = TrainingMetrics.model_validate_json((out / "metrics.json").read_text())
    assert metrics.dpo is not None and metrics.dpo.steps == 3
    assert metrics.sft.steps == config.sft.max_steps and len(metrics.sft.loss_curve) >= 8
    assert metrics.sft.tokens > 0 and metrics.precision.dtype in {"bf16", "fp32"}
    page = (out / "loss.html").read_text()
    image = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert image and base64.b64decode(image.group(1)).startswith(b"\x89PNG")
    card = (out / "README.md").read_text()
    assert config.base_model in card and metrics.precision.dtype in card
    saved = TrainingConfig.model_validate_json((out / "training_config.json").read_text())
    assert saved == config
    assert read_result(stack_settings, config.output_uri) == result


def test_trained_model_beats_the_base_model_on_held_out_data(
    full_run: tuple[TrainingConfig, TrainingResult, Path],
) -> None:
    _, result, _ = full_run
    assert result.base_eval_loss is not None and result.final_eval_loss is not None
    assert result.final_eval_loss < result.base_eval_loss - 0.1


def test_killed_run_resumes_from_its_last_synced_checkpoint(
    stack_settings: TwinSettings,
    inputs: tuple[str, dict[str, dict[str, str]]],
    tmp_path: Path,
) -> None:
    base_uri, uris = inputs
    config = _config(
        base_uri,
        uris,
        sft=StageHyperparameters(max_steps=60, batch_size=2, max_length=64, learning_rate=1e-3),
        checkpoint_steps=4,
    )
    transfer = Transfer(stack_settings.minio)
    stage_uri = f"{config.resolved_checkpoint_uri}/sft"
    lines: list[str] = []
    run = LocalRun(
        config,
        2,
        settings=stack_settings,
        work_dir=tmp_path / "first",
        echo=lines.append,
        prefix="",
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not complete_checkpoints(transfer, stage_uri):
        assert run.process.poll() is None, f"run ended before a checkpoint:\n{run.log_tail}"
        assert time.monotonic() < deadline, "no checkpoint appeared in time"
        time.sleep(0.1)
    run.kill(signal.SIGKILL)
    assert run.process.returncode != 0
    synced = complete_checkpoints(transfer, stage_uri)
    state = transfer.store.get_json(
        *split_s3(f"{stage_uri}/checkpoint-{synced[-1]}/trainer_state.json")
    )
    assert 0 < state["global_step"] == synced[-1] < config.sft.max_steps
    second: list[str] = []
    result = run_local(config, 2, settings=stack_settings, timeout_s=TIMEOUT_S, echo=second.append)
    assert any("SFT starting" in line and f"checkpoint-{synced[-1]}" in line for line in second), (
        "\n".join(second[-40:])
    )
    metrics = TrainingMetrics.model_validate_json(
        transfer.store.get_bytes(*split_s3(f"{config.output_uri}/metrics.json"))
    )
    assert metrics.sft.resumed_from_step == synced[-1]
    assert result.sft_steps == config.sft.max_steps


def test_failed_run_raises_with_the_log_tail(stack_settings: TwinSettings, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    config = _config(str(missing), {"sft": {"train": str(tmp_path / "absent.parquet")}})
    with pytest.raises(TrainingFailedError, match="exit code") as failure:
        run_local(config, 2, settings=stack_settings, timeout_s=TIMEOUT_S, echo=lambda _: None)
    assert f"base model directory {missing} has no config.json" in str(failure.value)


def test_timeout_stops_torchrun_and_every_rank(
    stack_settings: TwinSettings, inputs: tuple[str, dict[str, dict[str, str]]], tmp_path: Path
) -> None:
    base_uri, uris = inputs
    run = LocalRun(
        _config(base_uri, uris),
        2,
        settings=stack_settings,
        work_dir=tmp_path,
        echo=lambda _: None,
        prefix="",
    )
    deadline = time.monotonic() + 60
    while len(psutil.Process(run.process.pid).children(recursive=True)) < 2:
        assert time.monotonic() < deadline, "torchrun started no ranks"
        time.sleep(0.2)
    ranks = psutil.Process(run.process.pid).children(recursive=True)
    with pytest.raises(TrainingFailedError, match="timeout"):
        run.wait(timeout_s=0.5)
    assert run.process.returncode is not None
    assert not [rank for rank in ranks if rank.is_running() and rank.status() != "zombie"]
