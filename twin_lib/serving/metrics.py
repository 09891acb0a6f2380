"""Prometheus metrics of the twin's predictor, served by KServe's own ``/metrics``.

They live in prometheus_client's default registry, the one KServe's metrics handler encodes,
so one scrape target gives KServe's latency histograms and the twin's counters together.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
