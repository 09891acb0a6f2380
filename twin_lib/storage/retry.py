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
        extra={
            "attempt": state.attempt_number,
            "error": root_cause(error) if error else None,
        },
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
                raise ServiceUnavailableError(
                    self.service, self.endpoint, root_cause(error)
                ) from error
            raise


def root_cause(error: BaseException) -> str:
    """The innermost reason of a chained error, short: "Connection refused", not the
    three nested client exceptions around it.

    HTTP clients wrap the socket error several times (urllib3's ``MaxRetryError.reason``,
    ``__cause__`` chains); the innermost one is what a person can act on.
    """
    seen: set[int] = set()
    current: BaseException = error
    while id(current) not in seen:
        seen.add(id(current))
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException):
            inner = current.__cause__ or current.__context__
        if inner is None:
            break
        current = inner
    if isinstance(current, OSError) and current.strerror:
        return current.strerror
    text = str(current).splitlines()[0].strip() if str(current).strip() else ""
    return (text or type(current).__name__)[:200]
