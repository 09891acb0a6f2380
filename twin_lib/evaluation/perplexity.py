"""Held-out perplexity: how likely a model finds the author's text it never trained on.

The texts are scored as plain text (no chat template), each on its own from its first token,
so the figure does not depend on prompt formatting and means the same for a base model that
never saw the template. Every token after the first counts once (token-weighted mean), in
fp32 on the CPU with dropout off, so the number is the same on every run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from twin_lib.evaluation.results import Perplexity

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)


def held_out_perplexity(
    model_dir: Path, texts: Sequence[str], *, batch_size: int, max_tokens: int
) -> Perplexity:
    """Perplexity of the causal LM in ``model_dir`` on ``texts``, each cut at ``max_tokens``
    or the model's context window, whichever is shorter (beyond its window a model is scored
    on positions it never trained on)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    window = getattr(model.config, "max_position_embeddings", None) or max_tokens
    encoded = [
        tokenizer(text, truncation=True, max_length=min(max_tokens, window))["input_ids"]
        for text in texts
        if text.strip()
    ]
    encoded = sorted((ids for ids in encoded if len(ids) > 1), key=len)
    if not encoded:
        raise ValueError(
            f"no held-out text of at least two tokens to score {model_dir} on: the "
            "instruction snapshot's test split is empty; rebuild it with a test_fraction > 0"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total_nll, total_tokens = 0.0, 0
    with torch.inference_mode():
        for begin in range(0, len(encoded), batch_size):
            nll, tokens = _batch_nll(model, encoded[begin : begin + batch_size], pad)
            total_nll, total_tokens = total_nll + nll, total_tokens + tokens
            logger.info(
                "scored held-out texts",
                extra={"model_dir": str(model_dir), "done": min(begin + batch_size, len(encoded))},
            )
    mean = total_nll / total_tokens
    return Perplexity(
        texts=len(encoded), tokens=total_tokens, mean_nll=mean, perplexity=math.exp(mean)
    )


def _batch_nll(model: PreTrainedModel, batch: list[list[int]], pad: int) -> tuple[float, int]:
    """Summed NLL of every predicted token of a right-padded batch, and how many there were."""
    import torch
    from torch.nn import functional

    width = max(len(ids) for ids in batch)
    ids = torch.tensor([row + [pad] * (width - len(row)) for row in batch])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in batch])
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    targets, scored = ids[:, 1:], mask[:, 1:].bool()
    nll = functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
    return float(nll[scored].sum()), int(scored.sum())
