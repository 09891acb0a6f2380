"""Errors raised by the storage adapters, written for the person who has to fix them."""

from __future__ import annotations


class StorageError(RuntimeError):
    """A storage operation failed for a reason other than the service being down."""


class ServiceUnavailableError(StorageError):
    """A backing service cannot be reached: say which one, where, and how to bring it up."""

    def __init__(self, service: str, endpoint: str, cause: BaseException | str) -> None:
        self.service = service
        self.endpoint = endpoint
        super().__init__(
            f"{service} is not reachable at {endpoint} ({cause}). "
            f"Start the local stack with `twin stack up`, or point the settings at a running "
            f"{service} (see `TWIN_{service.upper()}__*` in the README)."
        )


class ObjectNotFoundError(StorageError):
    """The object or snapshot asked for does not exist."""
