import pytest

from twin_lib.storage.errors import ServiceUnavailableError
from twin_lib.storage.retry import RetryPolicy


class Flaky:
    """Fails with ``error`` for the first ``failures`` calls, then returns ``"done"``."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


def _call(operation: Flaky, attempts: int = 4) -> str:
    policy = RetryPolicy(
        service="MinIO",
        endpoint="http://127.0.0.1:1",
        is_transient=lambda e: isinstance(e, ConnectionError | TimeoutError),
        is_unreachable=lambda e: isinstance(e, ConnectionError),
        attempts=attempts,
        max_wait_s=0.01,
    )
    return policy.call(operation)


def test_transient_errors_are_retried_until_success():
    flaky = Flaky(2, TimeoutError("slow"))
    assert _call(flaky) == "done"
    assert flaky.calls == 3


def test_unreachable_service_becomes_one_clear_error_after_retries():
    flaky = Flaky(10, ConnectionError("connection refused"))
    with pytest.raises(ServiceUnavailableError) as error:
        _call(flaky, attempts=3)
    assert flaky.calls == 3
    assert "MinIO is not reachable at http://127.0.0.1:1" in str(error.value)
    assert "twin stack up" in str(error.value)


def test_permanent_errors_are_not_retried():
    flaky = Flaky(1, ValueError("bad request"))
    with pytest.raises(ValueError, match="bad request"):
        _call(flaky)
    assert flaky.calls == 1


def test_the_message_names_the_innermost_cause_not_the_client_wrappers():
    refused = ConnectionRefusedError(111, "Connection refused")
    try:
        try:
            raise refused
        except OSError as inner:
            raise ConnectionError(
                f"HTTPConnectionPool(...): Max retries exceeded ({inner!r})"
            ) from inner
    except ConnectionError as wrapped:
        flaky = Flaky(10, wrapped)
    with pytest.raises(ServiceUnavailableError) as error:
        _call(flaky, attempts=1)
    assert "(Connection refused)" in str(error.value)
    assert "Max retries" not in str(error.value)
