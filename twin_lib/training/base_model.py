"""A small base model that knows some English, built offline once per machine.

No model hub is reachable offline, and LoRA on random weights teaches nothing, so the platform
builds its own: a byte-level BPE tokenizer trained with ``tokenizers`` (with the platform's chat
template saved in it) and a Llama of a few million parameters pre-trained for a few minutes on
the corpus of :mod:`twin_lib.training.corpus`. Real deployments name a hub id or an ``s3://``
path instead; everything after loading is the same code.

A build is cached like the server binaries: ``<cache_dir>/models/base-<key>/`` where the key
hashes the recipe and this code, written to a temporary directory and renamed into place, under
a file lock so concurrent processes (two test workers, several ranks) build it only once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import torch
import transformers
from pydantic import BaseModel
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from twin_lib.hashing import sha256_bytes, sha256_json
from twin_lib.settings import BaseModelRecipe
from twin_lib.training import chat_template, corpus
from twin_lib.training.chat_template import CHAT_TEMPLATE, END_OF_TEXT, IM_END, PAD, SPECIAL_TOKENS
from twin_lib.training.corpus import Corpus, Document
from twin_lib.training.precision import plan_precision

logger = logging.getLogger(__name__)

RECORD_FILE = "recipe.json"


class CorpusRecord(BaseModel):
    provenance: str
    licence: str
    fingerprint: str
    chars: int
    train_documents: int
    validation_documents: int
    train_tokens: int
    validation_tokens: int


class BaseModelRecord(BaseModel):
    """What ``recipe.json`` next to the weights says: how the model was made and how good it is."""

    key: str
    recipe: BaseModelRecipe
    code_version: str
    corpus: CorpusRecord
    parameters: int
    precision: Literal["bf16", "fp32"]
    threads: int
    steps: int
    stopped_by: Literal["max_steps", "time_budget"]
    tokens_seen: int
    pretrain_seconds: float
    build_seconds: float
    validation_loss_initial: float
    validation_loss: float
    validation_perplexity: float
    unigram_loss: float
    unigram_perplexity: float
    created: datetime
    versions: dict[str, str]


def code_version() -> str:
    """Hash of the modules that decide what a build produces: an edit makes a new cache key."""
    sources = (Path(m.__file__ or "").read_bytes() for m in (sys.modules[__name__], corpus))
    return sha256_bytes(b"".join([*sources, CHAT_TEMPLATE.encode()]))[:16]


def recipe_key(recipe: BaseModelRecipe) -> str:
    """Recipe, code and Python version: the corpus is the running interpreter's own docs."""
    identity = {
        "recipe": recipe.model_dump(mode="json"),
        "code": code_version(),
        "python": list(sys.version_info[:2]),
    }
    return sha256_json(identity)[:16]


def train_tokenizer(
    documents: list[Document], vocab_size: int, max_length: int
) -> PreTrainedTokenizerFast:
    """Byte-level BPE (any input encodes, nothing is unknown) carrying the chat template."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator((d.text for d in documents), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=PAD,
        bos_token=END_OF_TEXT,
        unk_token=None,
        additional_special_tokens=[chat_template.IM_START],
        chat_template=CHAT_TEMPLATE,
        model_max_length=max_length,
        padding_side="right",
    )


def _token_stream(tokenizer: PreTrainedTokenizerFast, documents: list[Document]) -> torch.Tensor:
    """All documents as one sequence, each ended by ``<|endoftext|>``."""
    separator = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    encoded = tokenizer.backend_tokenizer.encode_batch([d.text for d in documents])
    ids = [token for e in encoded for token in [*e.ids, separator]]
    return torch.tensor(ids, dtype=torch.long)


def _validation_windows(stream: torch.Tensor, seq_len: int, count: int) -> torch.Tensor:
    usable = min(count, len(stream) // seq_len)
    if usable == 0:
        raise ValueError(
            f"validation text has {len(stream)} tokens, fewer than one sequence of {seq_len}: "
            "raise validation_fraction or corpus_max_chars, or lower seq_len"
        )
    return stream[: usable * seq_len].view(usable, seq_len)


def unigram_loss(train: torch.Tensor, windows: torch.Tensor, vocab_size: int) -> float:
    """Cross-entropy of add-one unigram frequencies on the tokens the model is scored on."""
    counts = torch.bincount(train, minlength=vocab_size).double() + 1.0
    log_probs = (counts / counts.sum()).log()
    return float(-log_probs[windows[:, 1:].reshape(-1)].mean())


@torch.no_grad()
def evaluate(model: LlamaForCausalLM, windows: torch.Tensor, batch_size: int) -> float:
    """Mean next-token loss over the held-out windows, in fp32 so builds compare exactly."""
    model.eval()
    losses = [
        float(model(input_ids=batch, labels=batch).loss) for batch in windows.split(batch_size)
    ]
    model.train()
    return sum(losses) / len(losses)


def _learning_rate(recipe: BaseModelRecipe, step: int, progress: float) -> float:
    """Linear warm-up, then cosine decay to a tenth over progress (steps or time, whichever
    runs out first), so a time-boxed build still ends on a low learning rate."""
    if step < recipe.warmup_steps:
        return recipe.learning_rate * (step + 1) / recipe.warmup_steps
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return recipe.learning_rate * (0.1 + 0.9 * cosine)


def _optimizer(model: LlamaForCausalLM, recipe: BaseModelRecipe) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": recipe.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=recipe.learning_rate, betas=(0.9, 0.95), fused=True)


class _PretrainResult(BaseModel):
    steps: int
    tokens_seen: int
    seconds: float
    stopped_by: Literal["max_steps", "time_budget"]


def pretrain(
    model: LlamaForCausalLM,
    stream: torch.Tensor,
    recipe: BaseModelRecipe,
    precision: Literal["bf16", "fp32"],
) -> _PretrainResult:
    """Next-token training on random windows of the stream until the step or time budget."""
    generator = torch.Generator().manual_seed(recipe.seed)
    optimizer = _optimizer(model, recipe)
    tokens_per_step = recipe.batch_size * recipe.seq_len
    last_start = len(stream) - recipe.seq_len
    if last_start <= 0:
        raise ValueError(
            f"training text has {len(stream)} tokens, fewer than one sequence of "
            f"{recipe.seq_len}: raise corpus_max_chars or lower seq_len"
        )
    model.train()
    started = time.monotonic()
    step = 0
    while step < recipe.max_steps:
        elapsed = time.monotonic() - started
        if elapsed >= recipe.time_budget_s:
            break
        progress = max(step / recipe.max_steps, elapsed / recipe.time_budget_s)
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(recipe, step, progress)
        starts = torch.randint(0, last_start + 1, (recipe.batch_size,), generator=generator)
        batch = torch.stack([stream[s : s + recipe.seq_len] for s in starts.tolist()])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if step % recipe.log_every_steps == 0 or step == recipe.max_steps:
            _log_progress(recipe, step, loss.item(), tokens_per_step, time.monotonic() - started)
    return _PretrainResult(
        steps=step,
        tokens_seen=step * tokens_per_step,
        seconds=time.monotonic() - started,
        stopped_by="max_steps" if step >= recipe.max_steps else "time_budget",
    )


def _log_progress(
    recipe: BaseModelRecipe, step: int, loss: float, tokens_per_step: int, elapsed: float
) -> None:
    remaining_by_steps = (recipe.max_steps - step) * elapsed / step
    eta = min(remaining_by_steps, max(recipe.time_budget_s - elapsed, 0.0))
    logger.info(
        "pretraining",
        extra={
            "step": step,
            "loss": round(loss, 4),
            "tokens_per_s": round(step * tokens_per_step / elapsed),
            "eta_s": round(eta),
        },
    )


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[int]:
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def llama_config(recipe: BaseModelRecipe, vocab_size: int, **token_ids: int | None) -> LlamaConfig:
    """The Llama shape of ``recipe`` (tied embeddings); ``token_ids`` are bos/eos/pad ids."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_kv_heads,
        max_position_embeddings=recipe.max_position_embeddings,
        tie_word_embeddings=True,
        **token_ids,
    )


def build_base_model(recipe: BaseModelRecipe, out_dir: Path) -> Path:
    """Train the tokenizer and pre-train the model into ``out_dir`` (created; must not exist).

    The directory loads with ``AutoTokenizer`` / ``AutoModelForCausalLM.from_pretrained``.
    """
    started = time.monotonic()
    out_dir.mkdir(parents=True)
    text = corpus.load_corpus(recipe.validation_fraction, recipe.corpus_max_chars)
    tokenizer = train_tokenizer(text.train, recipe.vocab_size, recipe.max_position_embeddings)
    train_stream = _token_stream(tokenizer, text.train)
    windows = _validation_windows(
        _token_stream(tokenizer, text.validation), recipe.seq_len, recipe.eval_sequences
    )
    precision = plan_precision(recipe.precision, cuda=False).dtype
    torch.manual_seed(recipe.seed)
    model = LlamaForCausalLM(
        llama_config(
            recipe,
            len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    parameters = sum(p.numel() for p in model.parameters())
    logger.info(
        "building base model",
        extra={"parameters": parameters, "train_tokens": len(train_stream), "precision": precision},
    )
    with _torch_threads(recipe.threads) as threads:
        initial = evaluate(model, windows, recipe.batch_size)
        result = pretrain(model, train_stream, recipe, precision)
        final = evaluate(model, windows, recipe.batch_size)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.bos_token_id],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    baseline = unigram_loss(train_stream, windows, len(tokenizer))
    record = BaseModelRecord(
        key=recipe_key(recipe),
        recipe=recipe,
        code_version=code_version(),
        corpus=_corpus_record(text, train_stream, windows),
        parameters=parameters,
        precision=precision,
        threads=threads,
        steps=result.steps,
        stopped_by=result.stopped_by,
        tokens_seen=result.tokens_seen,
        pretrain_seconds=round(result.seconds, 2),
        build_seconds=round(time.monotonic() - started, 2),
        validation_loss_initial=initial,
        validation_loss=final,
        validation_perplexity=math.exp(final),
        unigram_loss=baseline,
        unigram_perplexity=math.exp(baseline),
        created=datetime.now(UTC),
        versions={
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
    )
    (out_dir / RECORD_FILE).write_text(record.model_dump_json(indent=2) + "\n")
    logger.info(
        "base model built",
        extra={
            "path": str(out_dir),
            "build_s": record.build_seconds,
            "validation_loss": round(final, 4),
            "validation_ppl": round(record.validation_perplexity, 1),
            "unigram_ppl": round(record.unigram_perplexity, 1),
        },
    )
    if final >= baseline:
        logger.warning(
            "the base model predicts held-out text no better than token frequencies do: "
            "pre-training stopped after %d steps (%s); build on an idle machine or raise "
            "time_budget_s / max_steps",
            result.steps,
            result.stopped_by,
        )
    return out_dir


def _corpus_record(text: Corpus, train: torch.Tensor, windows: torch.Tensor) -> CorpusRecord:
    return CorpusRecord(
        provenance=text.provenance,
        licence=text.licence,
        fingerprint=text.fingerprint,
        chars=text.chars,
        train_documents=len(text.train),
        validation_documents=len(text.validation),
        train_tokens=len(train),
        validation_tokens=windows.numel(),
    )


def base_model_dir(recipe: BaseModelRecipe, cache_dir: Path) -> Path:
    return cache_dir / "models" / f"base-{recipe_key(recipe)}"


def read_record(model_dir: Path) -> BaseModelRecord:
    path = model_dir / RECORD_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"no base model at {model_dir} (it has no {RECORD_FILE}): build one with "
            "`twin base-model build`, or name a directory that command built"
        )
    return BaseModelRecord.model_validate_json(path.read_text())


def ensure_base_model(recipe: BaseModelRecipe, cache_dir: Path) -> Path:
    """The cached model directory for ``recipe``, built first if this machine has none."""
    final = base_model_dir(recipe, cache_dir)
    if (final / RECORD_FILE).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(final.with_name(f"{final.name}.lock")):
        if (final / RECORD_FILE).exists():
            return final
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        try:
            build_base_model(recipe, staging / "model")
            (staging / "model").rename(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """An fcntl lock: released by the kernel if the holder dies, so no stale lock files."""
    with path.open("a") as handle:
        logger.debug("waiting for lock", extra={"lock": str(path)})
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
