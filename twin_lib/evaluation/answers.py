"""Length and refusal statistics of generated answers."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from twin_lib.evaluation.results import AnswerStats


def is_refusal(text: str, patterns: Sequence[re.Pattern[str]]) -> bool:
    """An empty answer refuses as surely as "I cannot answer that"."""
    return not text.strip() or any(pattern.search(text) for pattern in patterns)


def answer_stats(
    texts: Sequence[str], completion_tokens: Sequence[int], refusal_patterns: Sequence[str]
) -> AnswerStats:
    """Words and tokens (mean, median, 95th percentile), empty answers and refusals."""
    if not texts:
        raise ValueError("no answers to measure: evaluate at least one question")
    patterns = [re.compile(p, re.IGNORECASE) for p in refusal_patterns]
    words = np.array([len(text.split()) for text in texts], dtype=float)
    tokens = np.array(completion_tokens, dtype=float)
    refusals = sum(is_refusal(text, patterns) for text in texts)
    return AnswerStats(
        answers=len(texts),
        words_mean=float(words.mean()),
        words_p50=float(np.percentile(words, 50)),
        words_p95=float(np.percentile(words, 95)),
        tokens_mean=float(tokens.mean()),
        tokens_p50=float(np.percentile(tokens, 50)),
        tokens_p95=float(np.percentile(tokens, 95)),
        empty=sum(not text.strip() for text in texts),
        refusals=refusals,
        refusal_rate=refusals / len(texts),
    )
