"""A small client of the twin's OpenAI-compatible chat route, for `twin ask`, smoke checks
after a rollout and the serving benchmark.

It speaks plain HTTP with httpx rather than the ``openai`` package because the answer's
sources and id travel as extra top-level fields that the official client's typed objects
hide; any OpenAI client still works against the same route.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

import httpx
from pydantic import BaseModel, Field, ValidationError

from twin_lib.serving.contracts import Source
from twin_lib.storage.retry import root_cause

# The paths of KServe's Hugging Face runtime (kept here: the server's modules import KServe).
_OPENAI_PREFIX = "/openai/v1"
CHAT_ROUTE = f"{_OPENAI_PREFIX}/chat/completions"
FEEDBACK_ROUTE = f"{_OPENAI_PREFIX}/feedback"
READY_ROUTE = "/v2/health/ready"
# Enough of an error page to say what went wrong without flooding a terminal.
_BODY_EXCERPT = 300


class TwinClientError(Exception):
    """The twin could not answer: ``status`` is the HTTP status, None when none came back."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ClientAnswer(BaseModel):
    """One answer as the client saw it, with the latency measured on this side."""

    id: str = Field(description="the answer id the twin recorded it under")
    text: str
    sources: list[Source]
    model: str = Field(description="the served name that answered")
    model_version: str | None = Field(
        default=None, description="registry name/version, when the server says"
    )
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float = Field(default=0.0, description="request sent to last byte, client side")


class ClientRating(BaseModel):
    """A rating as the twin recorded it."""

    id: str
    answer_id: str
    rating: str
    comment: str | None = None


class TwinClient:
    """Asks a served twin questions over REST.

    ``base_url`` is the server's root (``http://127.0.0.1:8090``); an OpenAI base URL ending
    in ``/openai/v1`` is accepted too, so the address given to other OpenAI clients works.
    """

    def __init__(self, base_url: str, *, model: str = "twin", timeout_s: float = 120.0) -> None:
        root = base_url.rstrip("/")
        if root.endswith(_OPENAI_PREFIX):
            root = root[: -len(_OPENAI_PREFIX)]
        self.base_url = root
        self.model = model
        self._http = httpx.Client(base_url=root, timeout=httpx.Timeout(timeout_s, connect=5.0))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def ready(self) -> bool:
        """Whether the server says its model is loaded; False when it does not answer."""
        try:
            return self._http.get(READY_ROUTE, timeout=5.0).status_code == 200
        except httpx.HTTPError:
            return False

    def ask(self, question: str, *, max_tokens: int | None = None) -> ClientAnswer:
        """The twin's whole answer to ``question``, with its sources."""
        started = time.perf_counter()
        with self._exchange(self._payload(question, max_tokens, stream=False)) as response:
            response.read()
        body = _json_of(response)
        return _answer_of(body, started)

    def ask_stream(
        self, question: str, *, max_tokens: int | None = None
    ) -> Iterator[str | ClientAnswer]:
        """Text pieces as the twin writes them, then the whole :class:`ClientAnswer` last."""
        started = time.perf_counter()
        pieces: list[str] = []
        finish: dict[str, Any] = {}
        # The answer's id, sources and usage may ride on any event (usually the last ones).
        seen: dict[str, Any] = {}
        with self._exchange(self._payload(question, max_tokens, stream=True)) as response:
            for event in _sse_events(response):
                if "error" in event:
                    raise TwinClientError(
                        f"the twin at {self.base_url} failed mid-answer: {_error_text(event)}",
                        status=response.status_code,
                    )
                seen.update({k: v for k, v in event.items() if v is not None and k != "choices"})
                for choice in event.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece:
                        pieces.append(piece)
                        yield piece
                    if choice.get("finish_reason"):
                        finish = choice
        if not seen:
            raise TwinClientError(f"the twin at {self.base_url} streamed no answer (no events)")
        whole = {**seen, "choices": [{**finish, "message": {"content": "".join(pieces)}}]}
        yield _answer_of(whole, started)

    def rate(self, answer_id: str, rating: str, *, comment: str | None = None) -> ClientRating:
        """Rate one of the twin's answers ``up`` or ``down`` by its id, with a comment."""
        payload = {"answer_id": answer_id, "rating": rating, "comment": comment}
        try:
            response = self._http.post(FEEDBACK_ROUTE, json=payload)
        except httpx.HTTPError as error:
            raise TwinClientError(
                f"the twin is not reachable at {self.base_url} ({root_cause(error)}); start it "
                "with `twin serve up` or pass the right --url"
            ) from error
        if response.status_code >= 400:
            raise TwinClientError(
                f"the twin at {self.base_url} refused the rating (HTTP {response.status_code}): "
                f"{_error_text(_json_or_text(response))}",
                status=response.status_code,
            )
        try:
            return ClientRating.model_validate(_json_of(response))
        except ValidationError as error:
            raise TwinClientError(
                f"the twin's answer to a rating is not a receipt ({error.error_count()} "
                f"problem(s)): {response.text[:_BODY_EXCERPT]}",
                status=response.status_code,
            ) from error

    def _payload(self, question: str, max_tokens: int | None, *, stream: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": question}],
            "stream": stream,
        }
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        return payload

    @contextmanager
    def _exchange(self, payload: dict[str, Any]) -> Iterator[httpx.Response]:
        """One POST to the chat route, every failure turned into a :class:`TwinClientError`."""
        where = self.base_url
        connected = False
        try:
            with self._http.stream("POST", CHAT_ROUTE, json=payload) as response:
                connected = True
                if response.status_code >= 400:
                    response.read()
                    raise TwinClientError(
                        f"the twin at {where} refused the question (HTTP "
                        f"{response.status_code}): {_error_text(_json_or_text(response))}",
                        status=response.status_code,
                    )
                yield response
        except httpx.TimeoutException as error:
            raise TwinClientError(
                f"the twin at {where} did not answer in time ({type(error).__name__}); "
                f"raise the client timeout or ask for fewer tokens"
            ) from error
        except httpx.HTTPError as error:
            if connected:
                raise TwinClientError(
                    f"the connection to the twin at {where} broke mid-answer ({root_cause(error)})"
                ) from error
            raise TwinClientError(
                f"the twin is not reachable at {where} ({root_cause(error)}); start it with "
                f"`twin serve up` or pass the right --url"
            ) from error


def _sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON objects of an OpenAI-style event stream, up to ``data: [DONE]``."""
    for line in response.iter_lines():
        if not line.startswith("data:"):
            continue  # blank separators, comments, event names
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except json.JSONDecodeError as error:
            raise TwinClientError(
                f"the twin streamed an event that is not JSON: {data[:_BODY_EXCERPT]!r}",
                status=response.status_code,
            ) from error
        if isinstance(event, dict):
            yield event
    raise TwinClientError(
        "the twin's stream ended before `data: [DONE]`: the answer may be cut short",
        status=response.status_code,
    )


def _answer_of(body: dict[str, Any], started: float) -> ClientAnswer:
    """A chat completion with the twin's extra top-level fields as a ClientAnswer."""
    try:
        choice = body["choices"][0]
        usage = body.get("usage") or {}
        return ClientAnswer(
            id=body.get("answer_id") or body["id"],
            text=choice["message"]["content"] or "",
            sources=[Source.model_validate(s) for s in body.get("sources") or []],
            model=body.get("model") or "",
            model_version=body.get("model_version"),
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            latency_ms=(time.perf_counter() - started) * 1000,
        )
    except (KeyError, IndexError, TypeError, ValidationError) as error:
        raise TwinClientError(
            f"the twin's answer is not a chat completion with sources ({error!r}): "
            f"{json.dumps(body)[:_BODY_EXCERPT]}"
        ) from error


def _json_of(response: httpx.Response) -> dict[str, Any]:
    body = _json_or_text(response)
    if not isinstance(body, dict):
        raise TwinClientError(
            f"the twin answered HTTP {response.status_code} with something that is not a JSON "
            f"object: {str(body)[:_BODY_EXCERPT]!r}",
            status=response.status_code,
        )
    return body


def _json_or_text(response: httpx.Response) -> object:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text


def _error_text(body: object) -> str:
    """The server's own message from OpenAI (``error.message``), KServe or FastAPI bodies."""
    if isinstance(body, dict):
        error = body.get("error", body.get("detail"))
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if error is not None:
            return error if isinstance(error, str) else json.dumps(error)
        return json.dumps(body)[:_BODY_EXCERPT]
    return str(body).strip()[:_BODY_EXCERPT] or "(empty body)"
