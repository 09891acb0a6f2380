"""Retry transient failures with exponential backoff, and turn 'service down' into one error.

Both adapters share this policy so that a flaky network behaves the same for MinIO and
Weaviate: a few quick retries, then a ``ServiceUnavailableError`` that names the endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from twin_lib.storage.errors import ServiceUnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning(
        "transient storage error, retrying",
        extra={"attempt": state.attempt_number, "error": repr(error)},
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How one service's calls are retried, and how its being down is recognised."""

    service: str
    endpoint: str
    is_transient: Callable[[BaseException], bool]
    is_unreachable: Callable[[BaseException], bool]
    attempts: int = 4
    max_wait_s: float = 4.0

    def call(self, operation: Callable[[], T]) -> T:
        """Run ``operation``; retry transient errors; report an unreachable service clearly."""
        retrying = Retrying(
            retry=retry_if_exception(self.is_transient),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.25, max=self.max_wait_s),
            before_sleep=_log_retry,
            reraise=True,
        )
        try:
            return retrying(operation)
        except Exception as error:
            if self.is_unreachable(error):
                raise ServiceUnavailableError(self.service, self.endpoint, _short(error)) from error
            raise


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]
