"""Typed request errors of the predictor and how they reach the client.

The OpenAI routes answer in OpenAI's error shape (``{"error": {"message", "type", "param",
"code"}}``), which the official clients turn into their typed exceptions; KServe's v1/v2
routes keep KServe's own ``{"error": "..."}`` shape. One handler serves both, chosen by path,
so a limit is reported the same way whichever protocol hit it.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from kserve.errors import InvalidInput
from pydantic import ValidationError

from twin_lib.serving import metrics

log = logging.getLogger(__name__)
OPENAI_PREFIX = "/openai"


class ServingError(Exception):
    """A request the predictor refuses or cannot finish, with its HTTP status."""

    status: HTTPStatus = HTTPStatus.BAD_REQUEST
    type: str = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class BadRequestError(ServingError, InvalidInput):
    """Well-formed but refused: empty question, no user turn, too many tokens asked for."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        ServingError.__init__(self, message, param=param, code=code)
        self.reason = message


class InvalidPayloadError(BadRequestError):
    """The body does not have the request's shape (wrong types, missing fields)."""

    status = HTTPStatus.UNPROCESSABLE_ENTITY


class PayloadTooLargeError(BadRequestError):
    """The conversation is longer than the serving limits allow."""

    status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class UnknownModelError(ServingError):
    status = HTTPStatus.NOT_FOUND
    type = "not_found_error"


class NotReadyError(ServingError):
    status = HTTPStatus.SERVICE_UNAVAILABLE
    type = "service_unavailable_error"


class GenerationFailedError(ServingError):
    """Retrieval or generation broke (a store down, a bug): logged with its traceback."""

    status = HTTPStatus.INTERNAL_SERVER_ERROR
    type = "server_error"


class GenerationTimeoutError(ServingError):
    status = HTTPStatus.GATEWAY_TIMEOUT
    type = "timeout_error"


# Pydantic error types that our validators raise, and the status each deserves.
_STATUS_OF_ERROR_TYPE = {
    "json_invalid": HTTPStatus.BAD_REQUEST,
    "empty_question": HTTPStatus.BAD_REQUEST,
    "no_user_turn": HTTPStatus.BAD_REQUEST,
    "max_tokens_too_large": HTTPStatus.BAD_REQUEST,
    "unsupported_option": HTTPStatus.BAD_REQUEST,
    "prompt_too_long": HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    "too_many_messages": HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
}
_CLASS_OF_STATUS: dict[HTTPStatus, type[BadRequestError]] = {
    HTTPStatus.BAD_REQUEST: BadRequestError,
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: PayloadTooLargeError,
    HTTPStatus.UNPROCESSABLE_ENTITY: InvalidPayloadError,
}


def from_validation(error: ValidationError, *, what: str) -> BadRequestError:
    """The first problem of a request body as a typed error naming the field and the limit."""
    first = error.errors(include_url=False)[0]
    param = ".".join(str(part) for part in first["loc"]) or None
    status = _STATUS_OF_ERROR_TYPE.get(first["type"], HTTPStatus.UNPROCESSABLE_ENTITY)
    where = f" at '{param}'" if param else ""
    message = f"invalid {what}{where}: {first['msg']}"
    extra = len(error.errors()) - 1
    if extra:
        message += f" (and {extra} more problem{'s' if extra > 1 else ''})"
    return _CLASS_OF_STATUS[status](message, param=param, code=first["type"])


def _route_kind(request: Request) -> str:
    return "openai" if request.url.path.startswith(OPENAI_PREFIX) else "kserve"


def count(error: ServingError, where: str) -> None:
    """Every refused or failed request is counted; the server's own failures also logged."""
    metrics.ERRORS.labels(kind=type(error).__name__).inc()
    if error.status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        log.warning(
            "request failed",
            extra={"path": where, "status": int(error.status), "error": error.message},
        )


async def serving_error_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, ServingError)
    count(error, request.url.path)
    if _route_kind(request) == "openai":
        return JSONResponse(status_code=error.status, content=error.body())
    return JSONResponse(status_code=error.status, content={"error": error.message})


def install_handlers(app: FastAPI) -> None:
    """Register before the server starts: KServe's generic handler would answer 500 otherwise."""
    app.add_exception_handler(ServingError, serving_error_handler)
