"""The twin: retrieve the author's passages for the question, prompt, generate, cite.

One class answers for every route and backend: the KServe predictor, the OpenAI routes and
the benchmark call :meth:`Twin.answer` or :meth:`Twin.stream`, and whether the words come
from a model in this process or from an upstream server is the generator's business.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Sequence

from twin_lib.domain.chat import ChatMessage
from twin_lib.serving.contracts import (
    AnswerDelta,
    Generation,
    GenerationParams,
    Generator,
    Retriever,
    ServedModel,
    Source,
    TwinAnswer,
)
from twin_lib.serving.prompt import Prompt, build_prompt, question_of
from twin_lib.settings import ServingSettings, TwinSettings

logger = logging.getLogger(__name__)


class Twin:
    """A served model version with its retriever and generator."""

    def __init__(
        self,
        model: ServedModel,
        retriever: Retriever,
        generator: Generator,
        serving: ServingSettings,
    ) -> None:
        self.model = model
        self.retriever = retriever
        self.generator = generator
        self.serving = serving

    def answer(self, messages: Sequence[ChatMessage], params: GenerationParams) -> TwinAnswer:
        """The whole answer; a conversation without a final user turn is a ``ValueError``."""
        started = time.monotonic()
        question, prompt = self._prepare(messages)
        generation = self.generator.generate(prompt.messages, params)
        return self._finish(question, prompt, generation, started)

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Iterator[AnswerDelta]:
        """Text pieces, then one last delta carrying the answer.

        The question is checked and the passages retrieved before this returns, so a bad
        request or an unreachable feature store fails here, before a stream has begun.
        """
        started = time.monotonic()
        question, prompt = self._prepare(messages)
        return self._deltas(question, prompt, params, started)

    def close(self) -> None:
        """Release the retriever's connections and the generator's client, if they hold any."""
        close_if_closable(self.retriever)
        close_if_closable(self.generator)

    def _prepare(self, messages: Sequence[ChatMessage]) -> tuple[str, Prompt]:
        question = question_of(messages)
        chunks = self.retriever.retrieve(question)
        prompt = build_prompt(
            self.model.system_prompt,
            chunks,
            messages,
            max_context_chars=self.serving.retrieval.max_context_chars,
        )
        return question, prompt

    def _deltas(
        self, question: str, prompt: Prompt, params: GenerationParams, started: float
    ) -> Iterator[AnswerDelta]:
        items = self.generator.stream(prompt.messages, params)
        try:
            for item in items:
                if isinstance(item, Generation):
                    yield AnswerDelta(answer=self._finish(question, prompt, item, started))
                elif item:
                    yield AnswerDelta(text=item)
        finally:  # a reader that left early stops the generation now, not at garbage collection
            close_if_closable(items)

    def _finish(
        self, question: str, prompt: Prompt, generation: Generation, started: float
    ) -> TwinAnswer:
        answer = TwinAnswer(
            id=str(uuid.uuid4()),
            model=self.serving.served_name,
            model_version=self.model.label,
            question=question,
            text=generation.text,
            sources=[Source.of(chunk) for chunk in prompt.chunks],
            prompt_tokens=generation.prompt_tokens,
            completion_tokens=generation.completion_tokens,
            finish_reason=generation.finish_reason,
            latency_ms=round((time.monotonic() - started) * 1000, 2),
        )
        logger.info(
            "answered",
            extra={
                "answer_id": answer.id,
                "model_version": answer.model_version,
                "sources": len(answer.sources),
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
                "finish_reason": answer.finish_reason,
                "latency_ms": answer.latency_ms,
            },
        )
        return answer


def close_if_closable(part: object) -> None:
    """Retrievers, generators and streams that hold connections or a thread have ``close``."""
    close = getattr(part, "close", None)
    if callable(close):
        close()


def build_twin(settings: TwinSettings, model: ServedModel) -> Twin:
    """The twin of a resolved model version: its generator, and a retriever over its author's
    chunks in its collection (rewriting queries with the same generator when asked to)."""
    from twin_lib.serving.generators import make_generator
    from twin_lib.serving.query import QueryRewriter
    from twin_lib.serving.retrieval import WeaviateRetriever

    serving = settings.serving
    generator = make_generator(serving, model.model_dir)
    rewrites = serving.retrieval.query_expansion > 0 or serving.retrieval.self_query
    try:
        retriever = WeaviateRetriever(
            settings.weaviate,
            settings.features.embedding,
            serving.retrieval,
            collection=model.collection,
            author=model.author,
            rewriter=QueryRewriter(generator) if rewrites else None,
        )
    except BaseException:
        close_if_closable(generator)
        raise
    logger.info(
        "twin ready",
        extra={
            "model_version": model.label,
            "author": model.author,
            "collection": model.collection,
            "generator": generator.name,
            "query_rewriting": rewrites,
        },
    )
    return Twin(model, retriever, generator, serving)
