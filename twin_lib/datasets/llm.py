"""Generator (a): an LLM behind any OpenAI-compatible endpoint writes the instructions.

Passages are sent in batches; the model replies with one instruction per passage as strict
JSON, validated by a pydantic model. The author's passage stays the answer, so the twin
learns the author's words, not the generator's paraphrase. A batch whose reply does not
parse, or that the endpoint never answered, is not retried into a different answer: its
passages are quarantined with the reason and the raw reply, for a person to look at.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from html import escape

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from twin_lib.datasets.examples import instruction_example, system_turn
from twin_lib.domain.chat import ChatMessage
from twin_lib.domain.datasets import InstructionExample, SourceChunk, TokenUsage
from twin_lib.generation.endpoint import ChatEndpoint, EndpointError

logger = logging.getLogger(__name__)

PROMPT = (
    "You prepare a dataset that teaches a language model to write like {author}. For each "
    "passage below, written by {author}, write the one instruction or question a reader "
    "could give for which the passage is the perfect answer. Do not quote the passage. "
    'Reply with JSON only, exactly of this form: {{"items": [{{"index": <passage index>, '
    '"instruction": "<instruction>"}}]}}, one item per passage.'
)
_FENCE = re.compile(r"^```(?:json)?\s*\n(?P<body>.*)\n```$", re.DOTALL)


class GeneratedInstruction(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    index: int = Field(ge=0)
    instruction: str = Field(min_length=3)


class GeneratedBatch(BaseModel):
    """The only reply shape accepted; anything else quarantines the batch."""

    model_config = ConfigDict(extra="forbid", strict=True)

    items: list[GeneratedInstruction]


class GenerationFailure(BaseModel):
    """A passage the generator produced nothing usable for, and why."""

    chunk_id: str
    document_id: str
    source_url: str
    reason: str
    raw_reply: str | None = None


class LlmGeneration(BaseModel):
    examples: list[InstructionExample]
    failures: list[GenerationFailure]
    usage: TokenUsage


class ReplyError(ValueError):
    """The reply is not the JSON the prompt asked for."""


def batch_messages(author: str, batch: Sequence[SourceChunk]) -> list[ChatMessage]:
    passages = "\n\n".join(
        f'<passage index="{i}" title="{escape(c.title)}">\n{c.content}\n</passage>'
        for i, c in enumerate(batch)
    )
    return [
        ChatMessage(role="system", content=PROMPT.format(author=author)),
        ChatMessage(role="user", content=passages),
    ]


def parse_reply(text: str, passages: int) -> dict[int, str]:
    """Instructions by passage index. A single Markdown code fence around the JSON is
    tolerated (many chat models add one); the JSON inside must match exactly."""
    fenced = _FENCE.match(text.strip())
    body = fenced.group("body") if fenced else text
    try:
        batch = GeneratedBatch.model_validate_json(body)
    except ValidationError as error:
        raise ReplyError(f"reply is not the requested JSON: {error.errors()[0]['msg']}") from error
    indices = [item.index for item in batch.items]
    unknown = sorted(i for i in set(indices) if i >= passages)
    if unknown or len(indices) != len(set(indices)):
        raise ReplyError(
            f"reply names passage indices {indices}, but passages 0..{passages - 1} were sent "
            "once each"
        )
    return {item.index: item.instruction for item in batch.items}


def _failure(chunk: SourceChunk, reason: str, raw: str | None) -> GenerationFailure:
    return GenerationFailure(
        chunk_id=chunk.chunk_id,
        document_id=chunk.document_id,
        source_url=chunk.source_url,
        reason=reason,
        raw_reply=raw,
    )


def _run_batch(
    endpoint: ChatEndpoint, author: str, batch: Sequence[SourceChunk], system: ChatMessage
) -> tuple[list[InstructionExample], list[GenerationFailure], TokenUsage]:
    try:
        completion = endpoint.complete(batch_messages(author, batch), json_mode=True)
    except EndpointError as error:
        usage = TokenUsage(requests=1, attempts=error.attempts)
        return [], [_failure(c, str(error), None) for c in batch], usage
    usage = TokenUsage(
        requests=1,
        attempts=completion.attempts,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
    )
    try:
        instructions = parse_reply(completion.text, len(batch))
    except ReplyError as error:
        return [], [_failure(c, str(error), completion.text) for c in batch], usage
    generator = f"llm:{endpoint.settings.model}"
    examples, failures = [], []
    for index, chunk in enumerate(batch):
        if index in instructions:
            examples.append(
                instruction_example(chunk, instructions[index], system=system, generator=generator)
            )
        else:
            failures.append(
                _failure(chunk, f"reply has no item for passage {index}", completion.text)
            )
    return examples, failures, usage


def llm_examples(
    chunks: Sequence[SourceChunk],
    *,
    author: str,
    system_prompt: str,
    endpoint: ChatEndpoint,
    batch_size: int,
) -> LlmGeneration:
    """Batches run ``max_concurrency`` at a time; results keep the chunks' order."""
    batches = [chunks[i : i + batch_size] for i in range(0, len(chunks), batch_size)]
    system = system_turn(system_prompt, author)
    results: dict[int, tuple[list[InstructionExample], list[GenerationFailure], TokenUsage]] = {}
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=endpoint.settings.max_concurrency) as pool:
        futures = {
            pool.submit(_run_batch, endpoint, author, batch, system): index
            for index, batch in enumerate(batches)
        }
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            elapsed = time.monotonic() - started
            done = len(results)
            logger.info(
                "generated instruction batches",
                extra={
                    "done": done,
                    "total": len(batches),
                    "eta_s": round(elapsed / done * (len(batches) - done), 1),
                },
            )
    ordered = [results[i] for i in range(len(batches))]
    usage = sum((u for _, _, u in ordered), TokenUsage())
    generation = LlmGeneration(
        examples=[e for examples, _, _ in ordered for e in examples],
        failures=[f for _, failures, _ in ordered for f in failures],
        usage=usage,
    )
    logger.info(
        "LLM generation done",
        extra={
            "examples": len(generation.examples),
            "failed": len(generation.failures),
            "requests": usage.requests,
            "attempts": usage.attempts,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
        },
    )
    return generation
