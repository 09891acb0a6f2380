"""The offline base model: a cached build that loads, has learned something, and carries the
chat template that masks everything but the assistant's words."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM
from trl.chat_template_utils import has_generation_markers, is_chat_template_stop_token_trained
from typer.testing import CliRunner

from twin_lib.cli import app
from twin_lib.settings import BaseModelRecipe
from twin_lib.steps.base_model import resolve_base_model
from twin_lib.training.base_model import (
    RECORD_FILE,
    base_model_dir,
    build_base_model,
    ensure_base_model,
    read_record,
    recipe_key,
)
from twin_lib.training.chat_template import IM_END, SPECIAL_TOKENS
from twin_lib.training.corpus import clean, load_corpus

CONVERSATION = [
    {"role": "system", "content": "You write like the author."},
    {"role": "user", "content": "Describe the garden."},
    {"role": "assistant", "content": "The garden lies east, full of olive trees."},
    {"role": "user", "content": "And the river?"},
    {"role": "assistant", "content": "It runs cold and clear, ünder the bridge. 🌊"},
]


def test_second_ensure_is_instant_and_returns_the_same_directory(
    tiny_base_model: Path, tiny_cache_dir: Path
) -> None:
    weights = tiny_base_model / "model.safetensors"
    built_at = weights.stat().st_mtime_ns
    started = time.monotonic()
    again = ensure_base_model(BaseModelRecipe.tiny(), tiny_cache_dir)
    assert time.monotonic() - started < 1.0
    assert again == tiny_base_model == base_model_dir(BaseModelRecipe.tiny(), tiny_cache_dir)
    assert weights.stat().st_mtime_ns == built_at
    leftovers = [p.name for p in (tiny_cache_dir / "models").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_build_is_a_loadable_hugging_face_model_with_its_record(tiny_base_model: Path) -> None:
    names = {p.name for p in tiny_base_model.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", RECORD_FILE} <= names
    record = read_record(tiny_base_model)
    assert record.key == recipe_key(BaseModelRecipe.tiny())
    assert record.recipe == BaseModelRecipe.tiny()
    assert record.steps == BaseModelRecipe.tiny().max_steps
    assert record.corpus.licence.startswith("Python Software Foundation")
    assert record.build_seconds > 0
    model = AutoModelForCausalLM.from_pretrained(tiny_base_model)
    assert isinstance(model, LlamaForCausalLM)
    assert sum(p.numel() for p in model.parameters()) == record.parameters


def test_pretraining_lowers_held_out_loss_below_random_init(tiny_base_model: Path) -> None:
    """Scored here from the saved files, not from the record, on held-out documents."""
    recipe = BaseModelRecipe.tiny()
    text = load_corpus(recipe.validation_fraction, recipe.corpus_max_chars)
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    ids = tokenizer(text.validation[0].text[:4000], return_tensors="pt").input_ids[:, :256]
    trained = AutoModelForCausalLM.from_pretrained(tiny_base_model)
    torch.manual_seed(recipe.seed)
    untrained = LlamaForCausalLM(trained.config)
    with torch.no_grad():
        trained_loss = float(trained(input_ids=ids, labels=ids).loss)
        untrained_loss = float(untrained(input_ids=ids, labels=ids).loss)
    assert trained_loss < untrained_loss - 0.5
    record = read_record(tiny_base_model)
    assert record.validation_loss < record.validation_loss_initial - 0.5


def test_chat_template_masks_exactly_the_assistant_turns(tiny_base_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    encoded = tokenizer.apply_chat_template(
        CONVERSATION, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = encoded["input_ids"], encoded["assistant_masks"]
    runs = groupby(zip(ids, mask, strict=True), key=lambda pair: pair[1])
    assistant = [tokenizer.decode([t for t, _ in run]) for masked, run in runs if masked]
    expected = [f"{m['content']}{IM_END}" for m in CONVERSATION if m["role"] == "assistant"]
    assert assistant == expected
    prompt_only = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if not m])
    assert "olive" not in prompt_only
    assert "Describe the garden." in prompt_only
    # TRL's own checks: it keeps this template (no patched copy) and trains the stop token.
    assert has_generation_markers(tokenizer.chat_template)
    assert is_chat_template_stop_token_trained(tokenizer)


def test_chat_template_generation_prompt_and_roles(tiny_base_model: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    prompt = tokenizer.apply_chat_template(
        CONVERSATION[:2], tokenize=False, add_generation_prompt=True
    )
    assert prompt == (
        "<|im_start|>system\nYou write like the author.<|im_end|>\n"
        "<|im_start|>user\nDescribe the garden.<|im_end|>\n<|im_start|>assistant\n"
    )
    with pytest.raises(Exception, match="system, user and assistant"):
        tokenizer.apply_chat_template([{"role": "tool", "content": "x"}], tokenize=False)


def test_tokenizer_keeps_special_tokens_whole_and_round_trips_any_text(
    tiny_base_model: Path,
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    for special in SPECIAL_TOKENS:
        assert len(tokenizer(special, add_special_tokens=False).input_ids) == 1
    text = "Ünïcode — 漢字, emoji 🌊 and\ttabs\n  indented"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text
    assert tokenizer.eos_token == IM_END


def _smallest_recipe() -> BaseModelRecipe:
    return BaseModelRecipe.tiny().model_copy(
        update={
            "corpus_max_chars": 30_000,
            "validation_fraction": 0.3,
            "max_steps": 2,
            "eval_sequences": 2,
        }
    )


def test_concurrent_ensures_build_once(tmp_path: Path) -> None:
    """Two callers at once: one builds, the other waits on the lock and reuses the build.

    Threads suffice: ``flock`` locks belong to open file descriptions, so two ``open`` calls
    in one process exclude each other exactly as two processes do. Without the lock both
    would build and the second rename onto the finished directory would fail.
    """
    recipe = _smallest_recipe()
    with ThreadPoolExecutor(max_workers=2) as pool:
        paths = list(pool.map(lambda _: ensure_base_model(recipe, tmp_path), range(2)))
    assert paths[0] == paths[1] == base_model_dir(recipe, tmp_path)
    assert [p.name for p in (tmp_path / "models").iterdir() if p.is_dir()] == [paths[0].name]


def test_recipe_changes_change_the_cache_key() -> None:
    tiny = BaseModelRecipe.tiny()
    assert recipe_key(tiny) == recipe_key(BaseModelRecipe.tiny())
    assert recipe_key(tiny) != recipe_key(tiny.model_copy(update={"seed": 1}))
    assert recipe_key(tiny) != recipe_key(BaseModelRecipe())


def test_corpus_split_is_by_document_and_cleaned() -> None:
    text = load_corpus(0.2, 60_000)
    train_names = {d.name for d in text.train}
    assert train_names and text.validation
    assert train_names.isdisjoint(d.name for d in text.validation)
    assert all(">>>" not in d.text for d in text.documents)
    assert load_corpus(0.2, 60_000).fingerprint == text.fingerprint
    assert clean("Prose here.\n>>> 1 + 1\n2\n\n\n\nMore prose â€” fixed.") == (
        "Prose here.\n2\n\nMore prose — fixed."
    )


def test_cli_builds_into_the_cache_and_shows_the_record(
    tiny_base_model: Path, tiny_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_STACK__CACHE_DIR", str(tiny_cache_dir))
    built = CliRunner().invoke(app, ["base-model", "build", "--tiny"])
    assert built.exit_code == 0, built.output
    assert str(tiny_base_model) in built.output.replace("\n", "")
    shown = CliRunner().invoke(app, ["base-model", "show", str(tiny_base_model)])
    assert shown.exit_code == 0, shown.output
    assert "Python Software Foundation" in shown.output
    missing = CliRunner().invoke(app, ["base-model", "show", str(tiny_cache_dir / "none")])
    assert missing.exit_code == 1
    assert "twin base-model build" in missing.output
    refused = CliRunner().invoke(app, ["base-model", "build", "--tiny", "--precision", "fp16"])
    assert refused.exit_code == 1
    assert "precision" in refused.output
    monkeypatch.setenv("TWIN_TRAINING__BASE_RECIPE__SEED", "7")
    configured = CliRunner().invoke(app, ["base-model", "show"])
    assert configured.exit_code == 1
    expected = base_model_dir(BaseModelRecipe(seed=7), tiny_cache_dir)
    assert str(expected) in configured.output.replace("\n", "")


def test_step_uses_a_configured_model_as_given_and_builds_only_without_one(
    tiny_base_model: Path, tiny_cache_dir: Path, tmp_path: Path
) -> None:
    configured = "s3://twin-models/bases/llama-3.2-1b/"
    given = resolve_base_model(configured, BaseModelRecipe.tiny(), tmp_path)
    assert given.base_model == configured
    assert not given.offline_build
    assert not (tmp_path / "models").exists()
    offline = resolve_base_model(None, BaseModelRecipe.tiny(), tiny_cache_dir)
    assert offline.offline_build
    assert offline.base_model == str(tiny_base_model)
    assert offline.parameters == read_record(tiny_base_model).parameters


def test_a_build_cut_short_by_its_time_budget_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recipe = _smallest_recipe().model_copy(update={"time_budget_s": 1e-6})
    with caplog.at_level(logging.WARNING, logger="twin_lib.training.base_model"):
        path = build_base_model(recipe, tmp_path / "model")
    record = read_record(path)
    assert record.stopped_by == "time_budget"
    assert record.steps < recipe.max_steps
    assert "no better than token frequencies" in caplog.text
