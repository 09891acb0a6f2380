"""OpenAI-compatible routes on KServe's own FastAPI application.

KServe 0.21 serves ``/openai/v1/...`` only for models built on its vLLM-typed protocol
classes, and vLLM cannot join this environment; so the same paths are added here, with
request and response shapes the official ``openai`` client reads, on the same server (and
port, metrics and health checks) as the v1/v2 routes.

Request bodies are parsed by pydantic with the serving limits as validation context, so
a malformed body, a wrong type or a request over a limit is refused before any work starts,
with a message that names the field and the limit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any, Literal, Protocol, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from twin_lib.domain.chat import ChatMessage
from twin_lib.serving.contracts import FinishReason, GenerationParams, Source, TwinAnswer
from twin_lib.serving.errors import (
    OPENAI_PREFIX,
    NotReadyError,
    PayloadTooLargeError,
    ServingError,
    UnknownModelError,
    from_validation,
)
from twin_lib.settings import ServingSettings

# --- requests -------------------------------------------------------------------------------


def _limits(info: ValidationInfo) -> ServingSettings | None:
    """The serving limits given as validation context (None: built in code, trusted)."""
    return info.context if isinstance(info.context, ServingSettings) else None


def too_long(code: str, what: str, chars: int, limit: int, setting: str) -> PydanticCustomError:
    return PydanticCustomError(
        code,
        f"{what} has {{chars}} characters, over this server's limit of {{limit}} ({setting})",
        {"chars": chars, "limit": limit},
    )


def check_prompt(text_lengths: Sequence[int], limits: ServingSettings | None) -> None:
    if limits is not None and sum(text_lengths) > limits.max_prompt_chars:
        raise too_long(
            "prompt_too_long",
            "the prompt",
            sum(text_lengths),
            limits.max_prompt_chars,
            "serving.max_prompt_chars",
        )


class TokenBudget(BaseModel):
    """A request's ``max_tokens``, within the server's limit (also used by KServe v1)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    max_tokens: int | None = Field(default=None, ge=1)

    @field_validator("max_tokens")
    @classmethod
    def _within_token_limit(cls, value: int | None, info: ValidationInfo) -> int | None:
        limits = _limits(info)
        if value is not None and limits is not None and value > limits.max_tokens_limit:
            raise PydanticCustomError(
                "max_tokens_too_large",
                "max_tokens {value} is over this server's limit of {limit} "
                "(serving.max_tokens_limit)",
                {"value": value, "limit": limits.max_tokens_limit},
            )
        return value

    def budget(self, serving: ServingSettings) -> int:
        return self.max_tokens or min(serving.default_max_tokens, serving.max_tokens_limit)


class _GenerationRequest(TokenBudget):
    """Decoding options common to chat and text completions."""

    model: str = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    stream: bool = False

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int) -> int:
        if value != 1:
            raise PydanticCustomError(
                "unsupported_option", "n must be 1: the twin writes one answer per request"
            )
        return value

    def params(self, serving: ServingSettings) -> GenerationParams:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        options: dict[str, Any] = {
            "max_tokens": self.budget(serving),
            "stop": stop,
            "seed": self.seed,
        }
        if self.temperature is not None:
            options["temperature"] = self.temperature
        if self.top_p is not None:
            options["top_p"] = self.top_p
        return GenerationParams(**options)


class TextPart(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    type: Literal["text"]
    text: str


class ChatTurn(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart]

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatCompletionRequest(_GenerationRequest):
    messages: list[ChatTurn] = Field(min_length=1)

    @field_validator("messages")
    @classmethod
    def _conversation_within_limits(
        cls, messages: list[ChatTurn], info: ValidationInfo
    ) -> list[ChatTurn]:
        limits = _limits(info)
        if limits is not None and len(messages) > limits.max_messages:
            raise PydanticCustomError(
                "too_many_messages",
                "{count} messages is over this server's limit of {limit} (serving.max_messages)",
                {"count": len(messages), "limit": limits.max_messages},
            )
        check_prompt([len(turn.text) for turn in messages], limits)
        if messages[-1].role != "user":
            raise PydanticCustomError(
                "no_user_turn",
                "the last message must be the user's question (role 'user'), not '{role}'",
                {"role": messages[-1].role},
            )
        if not messages[-1].text.strip():
            raise PydanticCustomError("empty_question", "the user's last message is empty")
        return messages

    def chat(self) -> list[ChatMessage]:
        return [ChatMessage(role=turn.role, content=turn.text) for turn in self.messages]


class CompletionRequest(_GenerationRequest):
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)]

    @field_validator("prompt")
    @classmethod
    def _question_within_limits(cls, prompt: str | list[str], info: ValidationInfo) -> str:
        return _question(prompt if isinstance(prompt, str) else prompt[0], info)

    def chat(self) -> list[ChatMessage]:
        assert isinstance(self.prompt, str)
        return [ChatMessage(role="user", content=self.prompt)]


class Question(TokenBudget):
    """One question of a KServe v1 ``instances`` entry or a v2 ``question`` input."""

    question: str

    @field_validator("question")
    @classmethod
    def _question_within_limits(cls, question: str, info: ValidationInfo) -> str:
        return _question(question, info)

    def chat(self) -> list[ChatMessage]:
        return [ChatMessage(role="user", content=self.question)]


def _question(text: str, info: ValidationInfo) -> str:
    check_prompt([len(text)], _limits(info))
    if not text.strip():
        raise PydanticCustomError("empty_question", "the question is empty")
    return text


class RatingRequest(BaseModel):
    """``POST /openai/v1/feedback``: a user's thumbs up or down on an answer, by its id."""

    model_config = ConfigDict(strict=True, extra="forbid")

    answer_id: str = Field(min_length=1, max_length=200)
    rating: Literal["up", "down"]
    comment: str | None = None

    @field_validator("comment")
    @classmethod
    def _comment_within_limit(cls, comment: str | None, info: ValidationInfo) -> str | None:
        if comment is None:
            return None
        limits = _limits(info)
        if limits is not None and len(comment) > limits.feedback_max_comment_chars:
            raise too_long(
                "comment_too_long",
                "the comment",
                len(comment),
                limits.feedback_max_comment_chars,
                "serving.feedback_max_comment_chars",
            )
        return comment.strip() or None


class RatingReceipt(BaseModel):
    """What the feedback route answers: the rating as recorded."""

    object: Literal["twin.feedback"] = "twin.feedback"
    id: str
    answer_id: str
    rating: Literal["up", "down"]
    comment: str | None
    created: int


class UnknownAnswerError(ServingError):
    status = HTTPStatus.NOT_FOUND
    type = "not_found_error"


class FeedbackOffError(ServingError):
    """This server records no answers, so none can be rated."""

    status = HTTPStatus.CONFLICT
    type = "invalid_request_error"


R = TypeVar("R", bound=_GenerationRequest)


def parse_request(kind: type[R], body: bytes, serving: ServingSettings, *, known: set[str]) -> R:
    """The body as ``kind``, checked against the limits and the served names."""
    try:
        request = kind.model_validate_json(body, context=serving)
    except ValidationError as error:
        raise from_validation(error, what="request") from error
    if request.model not in known:
        raise UnknownModelError(
            f"model '{request.model}' is not served here; use one of {sorted(known)} "
            f"(GET {OPENAI_PREFIX}/v1/models)",
            param="model",
            code="model_not_found",
        )
    return request


# --- responses ------------------------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, answer: TwinAnswer) -> Usage:
        return cls(
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            total_tokens=answer.prompt_tokens + answer.completion_tokens,
        )


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class TwinExtras(BaseModel):
    """What the twin adds to OpenAI's shapes: the answer's id (for feedback) and sources."""

    answer_id: str | None = None
    sources: list[Source] | None = None
    model_version: str | None = None

    @classmethod
    def of(cls, answer: TwinAnswer) -> dict[str, Any]:
        return {
            "answer_id": answer.id,
            "sources": answer.sources,
            "model_version": answer.model_version,
        }


class _Envelope(TwinExtras):
    """Fields every completion object and chunk carries."""

    id: str
    created: int
    model: str


class ChatCompletion(_Envelope):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]
    usage: Usage


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(_Envelope):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChunkChoice]
    usage: Usage | None = None


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: FinishReason | None = None
    logprobs: None = None


class Completion(_Envelope):
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def completion_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def _closing(answer: TwinAnswer, request_id: str, created: int) -> dict[str, Any]:
    """What the whole answer and the last streamed event share: usage and the extras."""
    return {
        "id": request_id,
        "created": created,
        "model": answer.model,
        "usage": Usage.of(answer),
        **TwinExtras.of(answer),
    }


def chat_completion(answer: TwinAnswer, request_id: str) -> ChatCompletion:
    message = AssistantMessage(content=answer.text)
    return ChatCompletion(
        choices=[ChatChoice(message=message, finish_reason=answer.finish_reason)],
        **_closing(answer, request_id, int(answer.created.timestamp())),
    )


def chat_chunk(
    request_id: str, model: str, created: int, text: str, first: bool
) -> ChatCompletionChunk:
    delta = ChunkDelta(role="assistant" if first else None, content=text)
    return ChatCompletionChunk(
        id=request_id, created=created, model=model, choices=[ChunkChoice(delta=delta)]
    )


def last_chat_chunk(answer: TwinAnswer, request_id: str, created: int) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        choices=[ChunkChoice(delta=ChunkDelta(), finish_reason=answer.finish_reason)],
        **_closing(answer, request_id, created),
    )


def text_completion(answer: TwinAnswer, request_id: str) -> Completion:
    return Completion(
        choices=[CompletionChoice(text=answer.text, finish_reason=answer.finish_reason)],
        **_closing(answer, request_id, int(answer.created.timestamp())),
    )


def text_chunk(request_id: str, model: str, created: int, text: str, first: bool) -> Completion:
    return Completion(
        id=request_id, created=created, model=model, choices=[CompletionChoice(text=text)]
    )


def last_text_chunk(answer: TwinAnswer, request_id: str, created: int) -> Completion:
    return Completion(
        choices=[CompletionChoice(text="", finish_reason=answer.finish_reason)],
        **_closing(answer, request_id, created),
    )


@dataclass(frozen=True)
class Framing:
    """How one kind of completion wraps the twin's answer: whole, or as server-sent events
    (a piece per decoded text, then a last event with the finish reason, usage and extras)."""

    id_prefix: str
    whole: Callable[[TwinAnswer, str], BaseModel]
    piece: Callable[[str, str, int, str, bool], BaseModel]
    last: Callable[[TwinAnswer, str, int], BaseModel]


CHAT = Framing("chatcmpl", chat_completion, chat_chunk, last_chat_chunk)
TEXT = Framing("cmpl", text_completion, text_chunk, last_text_chunk)


def sse(event: BaseModel | dict[str, Any]) -> str:
    """One server-sent event as OpenAI streams them: ``data: {json}`` and a blank line."""
    body = (
        event.model_dump_json(exclude_none=False)
        if isinstance(event, BaseModel)
        else json.dumps(event)
    )
    return f"data: {body}\n\n"


SSE_DONE = "data: [DONE]\n\n"


def sse_error(error: ServingError) -> str:
    """A failure after the stream began: the status is already sent, so the event says it."""
    return sse(error.body())


# --- the routes -----------------------------------------------------------------------------


class OpenAIServable(Protocol):
    """What the routes need of a model: the shape of KServe's ``OpenAIGenerativeModel``."""

    ready: bool

    @property
    def served_names(self) -> set[str]: ...

    @property
    def created(self) -> int: ...

    @property
    def owner(self) -> str: ...

    async def create_chat_completion(
        self, request: ChatCompletionRequest, raw_request: Request | None = None
    ) -> BaseModel | AsyncIterator[str]: ...

    async def create_completion(
        self, request: CompletionRequest, raw_request: Request | None = None
    ) -> BaseModel | AsyncIterator[str]: ...

    async def rate(self, request: RatingRequest) -> RatingReceipt: ...


def _respond(result: BaseModel | AsyncIterator[str]) -> Response:
    if isinstance(result, BaseModel):
        return JSONResponse(result.model_dump(mode="json"))
    return StreamingResponse(
        result,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def body_limit(serving: ServingSettings) -> int:
    """Bytes a request body may have: the longest prompt fully escaped in JSON (``\\uXXXX``,
    six bytes a character) plus room for the other fields. Bigger bodies are refused while
    they are read, so a hostile client cannot make the server hold them in memory."""
    return serving.max_prompt_chars * 6 + serving.max_messages * 256 + 64 * 1024


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise _too_large(len(body), limit)
    return bytes(body)


def _too_large(size: int, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"the request body has {size} bytes or more, over this server's limit of {limit} "
        "(from serving.max_prompt_chars and serving.max_messages)",
        code="body_too_large",
    )


def openai_router(model: OpenAIServable, serving: ServingSettings) -> APIRouter:
    """``/openai/v1/{models,chat/completions,completions}`` answered by ``model``, and
    ``/openai/v1/feedback`` where users rate its answers by answer id."""
    router = APIRouter(prefix=f"{OPENAI_PREFIX}/v1")
    limit = body_limit(serving)

    async def parse(kind: type[R], raw_request: Request) -> R:
        if not model.ready:
            raise NotReadyError("the twin is not loaded yet (or is stopping); retry shortly")
        body = await read_body(raw_request, limit)
        return parse_request(kind, body, serving, known=model.served_names)

    @router.get("/models")
    async def list_models() -> Response:
        cards = [
            ModelCard(id=name, created=model.created, owned_by=model.owner)
            for name in sorted(model.served_names)
        ]
        return JSONResponse(ModelList(data=cards).model_dump(mode="json"))

    @router.post("/chat/completions")
    async def chat_completions(raw_request: Request) -> Response:
        request = await parse(ChatCompletionRequest, raw_request)
        return _respond(await model.create_chat_completion(request, raw_request))

    @router.post("/completions")
    async def completions(raw_request: Request) -> Response:
        request = await parse(CompletionRequest, raw_request)
        return _respond(await model.create_completion(request, raw_request))

    @router.post("/feedback", status_code=HTTPStatus.CREATED)
    async def feedback(raw_request: Request) -> Response:
        if not model.ready:
            raise NotReadyError("the twin is not loaded yet (or is stopping); retry shortly")
        body = await read_body(raw_request, limit)
        try:
            request = RatingRequest.model_validate_json(body, context=serving)
        except ValidationError as error:
            raise from_validation(error, what="rating") from error
        receipt = await model.rate(request)
        return JSONResponse(receipt.model_dump(mode="json"), status_code=HTTPStatus.CREATED)

    return router
