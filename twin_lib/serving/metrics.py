"""Prometheus metrics of the twin's predictor, served by KServe's own ``/metrics``.

They live in prometheus_client's default registry, the one KServe's metrics handler encodes,
so one scrape target gives KServe's latency histograms and the twin's counters together.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twin_lib.domain.chat import ChatMessage
from twin_lib.serving.contracts import (
    Generation,
    GenerationParams,
    Generator,
    RetrievedChunk,
    Retriever,
)
from twin_lib.serving.twin import Twin, close_if_closable

_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter(
    "twin_requests", "Requests answered, by route and HTTP status", ["route", "status"]
)
ERRORS = Counter("twin_errors", "Failed requests and background failures, by kind", ["kind"])
RETRIEVAL_SECONDS = Histogram(
    "twin_retrieval_seconds", "Time to find the chunks of one question", buckets=_SECONDS_BUCKETS
)
GENERATION_SECONDS = Histogram(
    "twin_generation_seconds",
    "Time to write one answer, retrieval excluded",
    buckets=_SECONDS_BUCKETS,
)
ANSWER_SECONDS = Histogram(
    "twin_answer_seconds", "Time to answer one question end to end", buckets=_SECONDS_BUCKETS
)
TOKENS_GENERATED = Counter("twin_tokens_generated", "Completion tokens written")
ANSWERS_RECORDED = Counter("twin_answers_recorded", "Answers written to object storage")
ANSWERS_DROPPED = Counter(
    "twin_answers_dropped", "Answers dropped unrecorded because the pending queue was full"
)


class RequestMetrics:
    """ASGI middleware counting every HTTP response by route template and status.

    The route template (``/v1/models/{model_name}:predict``), not the raw path, is the label,
    so probing random paths cannot grow the metric without bound.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(route=label, status=str(status)).inc()


class TimedRetriever:
    """A retriever whose every call is observed in ``twin_retrieval_seconds``."""

    def __init__(self, inner: Retriever) -> None:
        self.inner = inner

    def retrieve(self, question: str) -> list[RetrievedChunk]:
        with RETRIEVAL_SECONDS.time():
            return self.inner.retrieve(question)

    def close(self) -> None:
        close_if_closable(self.inner)


class TimedGenerator:
    """A generator whose answers are observed in ``twin_generation_seconds``."""

    def __init__(self, inner: Generator) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    def generate(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Generation:
        with GENERATION_SECONDS.time():
            return self.inner.generate(messages, params)

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Iterator[str | Generation]:
        started = time.monotonic()
        pieces = self.inner.stream(messages, params)
        try:
            for item in pieces:
                if isinstance(item, Generation):
                    GENERATION_SECONDS.observe(time.monotonic() - started)
                yield item
        finally:
            close_if_closable(pieces)

    def close(self) -> None:
        close_if_closable(self.inner)


def instrument(twin: Twin) -> Twin:
    """Time the twin's retrieval and generation apart (its own latency covers both)."""
    twin.retriever = TimedRetriever(twin.retriever)
    twin.generator = TimedGenerator(twin.generator)
    return twin
