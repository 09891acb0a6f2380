"""Calls to any OpenAI-compatible chat-completions endpoint, with retries and token counts.

The official ``openai`` client speaks the protocol; its own retries are switched off so that
one tenacity policy decides: 429, 5xx, timeouts and dropped connections are retried with
exponential backoff and jitter, and a server's ``Retry-After`` (or ``retry-after-ms``) is
honoured when it asks for a longer wait. Other errors (bad request, auth) fail at once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import httpx
import openai
from pydantic import BaseModel
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from twin_lib.domain.chat import ChatMessage, as_dicts
from twin_lib.settings import OpenAIEndpointSettings

logger = logging.getLogger(__name__)


class EndpointError(RuntimeError):
    """The endpoint refused a request or stayed unavailable through every retry."""

    def __init__(self, message: str, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts


class Completion(BaseModel):
    text: str
    prompt_tokens: int
    completion_tokens: int
    attempts: int
    finish_reason: str | None = None


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, openai.APIStatusError):
        return error.status_code == 429 or error.status_code >= 500
    return isinstance(error, openai.APIConnectionError)  # includes APITimeoutError


def retry_after_s(error: BaseException | None) -> float | None:
    """The wait a 429/503 response asks for, in seconds, if it names one."""
    if not isinstance(error, openai.APIStatusError):
        return None
    headers = error.response.headers
    for header, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None


class _Backoff:
    """Exponential backoff with jitter, or the server's Retry-After when that is longer."""

    def __init__(self, max_backoff_s: float) -> None:
        self.max_backoff_s = max_backoff_s
        self._exponential = wait_exponential_jitter(multiplier=0.5, max=max_backoff_s, jitter=0.5)

    def __call__(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        asked = retry_after_s(error)
        backoff = self._exponential(state)
        return min(max(backoff, asked), self.max_backoff_s) if asked is not None else backoff


class ChatEndpoint:
    """One client for one endpoint; safe to share between threads."""

    def __init__(self, settings: OpenAIEndpointSettings) -> None:
        if not settings.base_url:
            raise EndpointError(
                "no endpoint configured: set base_url (e.g. TWIN_DATASETS__LLM__BASE_URL="
                "http://host:8000/v1) or use the offline generator / local responder"
            )
        self.settings = settings
        self.client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key.get_secret_value(),
            timeout=settings.timeout_s,
            max_retries=0,
        )

    @property
    def label(self) -> str:
        return f"{self.settings.model} at {self.settings.base_url}"

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_mode: bool = False,
        max_tokens: int | None = None,
        temperature: float | None = None,
        options: Mapping[str, object] | None = None,
    ) -> Completion:
        """One completion; ``options`` are more request fields (``top_p``, ``stop``, ``seed``)."""
        extra = {"response_format": {"type": "json_object"}} if json_mode else {}
        response, attempts = self._create(
            messages, max_tokens=max_tokens, temperature=temperature, **extra, **(options or {})
        )
        choice = response.choices[0] if response.choices else None
        usage = response.usage
        return Completion(
            text=(choice.message.content or "") if choice else "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            attempts=attempts,
            finish_reason=choice.finish_reason if choice else None,
        )

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        options: Mapping[str, object] | None = None,
    ) -> Iterator[str | Completion]:
        """Text pieces as the server sends them, then the whole :class:`Completion`.

        Opening the stream is retried like :meth:`complete`; a stream that breaks after text
        was sent is not (the caller has already passed that text on) and raises
        :class:`EndpointError`, and so does one that ends without a finish reason (cut
        off rather than finished). Usage comes from the server's last chunk when it sends one
        (``stream_options.include_usage``); otherwise the completion tokens are the number
        of text chunks (one token each on vLLM) and the prompt tokens are unknown (0).
        """
        stream, attempts = self._create(
            messages,
            max_tokens=max_tokens,
            temperature=temperature,
            stream=True,
            stream_options={"include_usage": True},
            **(options or {}),
        )
        pieces: list[str] = []
        usage = None
        finish_reason = None
        try:
            for chunk in stream:
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    finish_reason = choice.finish_reason or finish_reason
                    if choice.delta and choice.delta.content:
                        pieces.append(choice.delta.content)
                        yield choice.delta.content
        except (openai.OpenAIError, httpx.HTTPError) as error:
            raise EndpointError(
                f"the stream from {self.label} broke after {len(pieces)} piece(s): {error}. "
                "Check the endpoint's health and load.",
                attempts,
            ) from error
        finally:
            stream.close()
        if finish_reason is None:
            raise EndpointError(
                f"the stream from {self.label} ended after {len(pieces)} piece(s) without a "
                "finish reason: the server stopped mid-answer. Check the endpoint's health.",
                attempts,
            )
        yield Completion(
            text="".join(pieces),
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else len(pieces),
            attempts=attempts,
            finish_reason=finish_reason,
        )

    def _create(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None,
        temperature: float | None,
        **fields: object,
    ) -> tuple[Any, int]:
        """The chat-completions call under the retry policy, and the attempts it took."""
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=_Backoff(self.settings.max_backoff_s),
            retry=retry_if_exception(is_retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            response = retrying(
                self.client.chat.completions.create,
                model=self.settings.model,
                messages=as_dicts(list(messages)),
                max_tokens=max_tokens or self.settings.max_tokens,
                temperature=self.settings.temperature if temperature is None else temperature,
                **fields,
            )
        except openai.OpenAIError as error:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise EndpointError(
                f"chat completion from {self.label} failed after {attempts} attempt(s): "
                f"{error}. Check the endpoint's URL, model name and API key, or its load.",
                attempts,
            ) from error
        return response, int(retrying.statistics.get("attempt_number", 1))

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.warning(
            "endpoint call failed, retrying",
            extra={
                "endpoint": self.label,
                "attempt": state.attempt_number,
                "wait_s": round(state.upcoming_sleep, 2),
                "error": type(error).__name__,
                "status": getattr(error, "status_code", None),
            },
        )
