"""A local chat model: loaded with the chat template it was trained with, prompted through it.

The dataset responder and the serving generator both run a merged or base model from a
directory; this module is what they share. It imports neither ``openai`` nor ``torch`` at
import time, so the serving image (which has no ``openai``) can load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twin_lib.domain.chat import ChatMessage, as_dicts

if TYPE_CHECKING:
    import torch


def load_chat_model(
    model_dir: Path, *, dtype: torch.dtype | None = None, device: str = "cpu"
) -> tuple[Any, Any]:
    """Tokenizer and causal LM of a model directory, the model in eval mode on ``device``.

    A tokenizer without a chat template is refused: the template is how the model saw its
    training conversations, and a default one would prompt it in a format it never learned.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if not tokenizer.chat_template:
        raise ValueError(
            f"the tokenizer in {model_dir} has no chat template; save one with the model "
            "(the platform's base models carry twin_lib.training.chat_template)"
        )
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype or torch.float32)
    model.to(device)
    model.eval()
    return tokenizer, model


def render_chat(tokenizer: Any, conversation: Sequence[ChatMessage]) -> str:
    """The prompt text for the assistant's next turn, in the tokenizer's own chat template."""
    return tokenizer.apply_chat_template(
        as_dicts(list(conversation)), tokenize=False, add_generation_prompt=True
    )
