"""Answering prompts: the ``Responder`` protocol and its two implementations.

A local Hugging Face model answers in batches with the chat template stored in its own
tokenizer (the template training used, so there is no train/serve skew); an
OpenAI-compatible endpoint answers with bounded concurrency. Callers see the same interface.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from twin_lib.domain.chat import ChatMessage
from twin_lib.generation.chat_model import load_chat_model, render_chat
from twin_lib.generation.endpoint import ChatEndpoint
from twin_lib.settings import ResponderSettings

logger = logging.getLogger(__name__)

Conversation = Sequence[ChatMessage]


class Responder(Protocol):
    """Writes the assistant's next turn for each conversation, in order."""

    @property
    def name(self) -> str: ...

    def respond(self, conversations: Sequence[Conversation]) -> list[str]: ...


class TransformersResponder:
    """A causal LM from a local directory, decoded greedily or with seeded sampling."""

    def __init__(self, model_dir: Path, settings: ResponderSettings) -> None:
        import torch

        self.model_dir = model_dir
        self.settings = settings
        self.tokenizer, self.model = load_chat_model(model_dir)
        self.tokenizer.padding_side = "left"  # generation continues from the right edge
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._torch = torch

    @property
    def name(self) -> str:
        return f"local:{self.model_dir.name}"

    def respond(self, conversations: Sequence[Conversation]) -> list[str]:
        answers: list[str] = []
        size = self.settings.batch_size
        started = time.monotonic()
        for start in range(0, len(conversations), size):
            answers.extend(self._batch(conversations[start : start + size], start))
            logger.info(
                "generated answers",
                extra={
                    "done": len(answers),
                    "total": len(conversations),
                    "elapsed_s": round(time.monotonic() - started, 1),
                },
            )
        return answers

    def _batch(self, batch: Sequence[Conversation], offset: int) -> list[str]:
        prompts = [render_chat(self.tokenizer, c) for c in batch]
        inputs = self.tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=False
        )
        sampling: dict[str, Any] = (
            {
                "do_sample": True,
                "temperature": self.settings.temperature,
                "top_p": self.settings.top_p,
            }
            if self.settings.do_sample
            else {"do_sample": False}
        )
        # Seeded per batch position, so answers do not depend on how work was batched before.
        self._torch.manual_seed(self.settings.seed + offset)
        with self._torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=self.settings.max_new_tokens,
                min_new_tokens=self.settings.min_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                **sampling,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [
            text.strip()
            for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        ]


class EndpointResponder:
    """An OpenAI-compatible endpoint, ``max_concurrency`` requests in flight at once."""

    def __init__(self, settings: ResponderSettings) -> None:
        self.settings = settings
        self.endpoint = ChatEndpoint(settings.endpoint)

    @property
    def name(self) -> str:
        return f"endpoint:{self.settings.endpoint.model}"

    def respond(self, conversations: Sequence[Conversation]) -> list[str]:
        def answer(conversation: Conversation) -> str:
            return self.endpoint.complete(
                conversation,
                max_tokens=self.settings.max_new_tokens,
                temperature=self.settings.temperature if self.settings.do_sample else 0.0,
            ).text.strip()

        with ThreadPoolExecutor(max_workers=self.settings.endpoint.max_concurrency) as pool:
            return list(pool.map(answer, conversations))


def make_responder(settings: ResponderSettings, base_model: Path | None) -> Responder:
    """The responder the settings name; the local one needs the base model's directory."""
    if settings.kind == "endpoint":
        return EndpointResponder(settings)
    if base_model is None:
        raise ValueError(
            "the local responder needs the base model directory (base_model=...); or set "
            "datasets.responder.kind=endpoint with an endpoint base_url"
        )
    return TransformersResponder(base_model, settings)
