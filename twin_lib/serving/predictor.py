"""The twin as a KServe model: the class the cluster's InferenceService and ``twin serve`` run.

Generation is blocking (a transformers ``generate`` or an HTTP call upstream), so it runs on
a small thread pool of ``max_concurrent_generations`` workers: the event loop stays free for
health checks and metrics, and requests beyond the pool queue instead of competing for the
one model. A request that passes ``generation_timeout_s`` (queueing included) gets a 504;
its worker still finishes the generation it started (bounded by ``max_tokens``) before it
takes the next, so a timeout never lets more generations run at once than configured.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import Request
from kserve import Model
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from twin_lib.domain.chat import ChatMessage
from twin_lib.registry.models import utc_now
from twin_lib.serving import metrics
from twin_lib.serving.contracts import AnswerDelta, GenerationParams, ServedModel, TwinAnswer
from twin_lib.serving.errors import (
    BadRequestError,
    GenerationFailedError,
    GenerationTimeoutError,
    NotReadyError,
    ServingError,
    count,
    from_validation,
)
from twin_lib.serving.openai_api import (
    CHAT,
    SSE_DONE,
    TEXT,
    ChatCompletionRequest,
    CompletionRequest,
    FeedbackOffError,
    Framing,
    Question,
    RatingReceipt,
    RatingRequest,
    UnknownAnswerError,
    completion_id,
    sse,
    sse_error,
)
from twin_lib.serving.recorder import AnswerRating, AnswerRecorder, RatingRecorder
from twin_lib.serving.twin import Twin, build_twin, close_if_closable
from twin_lib.settings import TwinSettings
from twin_lib.steps.serving import resolve_served_model
from twin_lib.storage import ObjectStore
from twin_lib.storage.retry import root_cause

log = logging.getLogger(__name__)

_QUESTION_INPUT = "question"


class PredictRequest(BaseModel):
    """KServe v1 body: ``{"instances": [{"question": "...", "max_tokens": 64}, ...]}``."""

    model_config = ConfigDict(strict=True, extra="ignore")

    instances: list[Question] = Field(min_length=1)


class TwinModel(Model):
    """Answers questions as the twin over KServe v1/v2 and the OpenAI-compatible routes.

    ``create_chat_completion`` and ``create_completion`` take the request, the raw request and
    return a completion or an async iterator of server-sent events, as KServe's
    ``OpenAIGenerativeModel`` does, so in an image that carries vLLM this class can derive from
    that class instead and KServe's own OpenAI routes replace :func:`openai_router`.
    """

    def __init__(
        self, settings: TwinSettings, *, name: str | None = None, model_dir: Path | None = None
    ) -> None:
        super().__init__(name or settings.serving.served_name)
        self.settings = settings
        self.serving = settings.serving
        self.model_dir = model_dir
        self.created = int(time.time())
        self.twin: Twin | None = None
        self.generator_name = ""
        self.device = ""
        self.recorder: AnswerRecorder | None = None
        self.ratings: RatingRecorder | None = None
        self._workers = self._worker_pool()

    # --- lifecycle --------------------------------------------------------------------------

    def load(self) -> bool:
        """Resolve the registry version, build retrieval and generation, start recording."""
        served = resolve_served_model(self.settings, model_dir=self.model_dir)
        twin = build_twin(self.settings, served)
        self.generator_name = twin.generator.name
        self.device = str(getattr(twin.generator, "device", "upstream"))
        self.twin = metrics.instrument(twin)
        self._workers = self._worker_pool()
        if self.serving.record_answers:
            store, bucket = ObjectStore(self.settings.minio), self.settings.minio.datasets_bucket
            self.recorder = AnswerRecorder(store, bucket, served, self.serving)
            self.ratings = RatingRecorder(store, bucket, served, self.serving)
            self.recorder.start()
            self.ratings.start()
        self.ready = True
        return self.ready

    def _worker_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(
            max_workers=self.serving.max_concurrent_generations,
            thread_name_prefix="twin-generate",
        )

    def stop(self) -> None:
        """Refuse new work, flush the recorded answers and ratings, release the model. Safe to
        repeat."""
        self.ready = False
        self._workers.shutdown(wait=False, cancel_futures=True)
        if self.recorder is not None:
            self.recorder.stop()
            self.recorder = None
        if self.ratings is not None:
            self.ratings.stop()
            self.ratings = None
        if self.twin is not None:
            self.twin.close()
            self.twin = None

    @property
    def served(self) -> ServedModel:
        return self._twin().model

    @property
    def served_names(self) -> set[str]:
        return {self.name}

    @property
    def owner(self) -> str:
        return self.served.label

    def _twin(self) -> Twin:
        if not self.ready or self.twin is None:
            raise NotReadyError(f"model '{self.name}' is not loaded yet (or is stopping); retry")
        return self.twin

    # --- answering --------------------------------------------------------------------------

    async def answer(self, messages: Sequence[ChatMessage], params: GenerationParams) -> TwinAnswer:
        """One whole answer, generated on the worker pool within the generation timeout."""
        twin = self._twin()
        work = asyncio.get_running_loop().run_in_executor(
            self._workers, twin.answer, messages, params
        )
        try:
            answer = await asyncio.wait_for(work, self.serving.generation_timeout_s)
        except TimeoutError as error:
            raise self._timeout() from error
        except Exception as error:
            raise _failed(error) from error
        self._finished(answer)
        return answer

    async def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> AsyncGenerator[AnswerDelta, None]:
        """The answer's pieces as they are decoded; the last delta carries the whole answer.

        A worker thread drives the blocking iterator and hands each delta to the event loop;
        closing this iterator early (a client that hangs up) stops the worker at its next
        piece instead of letting it write an answer nobody reads.
        """
        twin = self._twin()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[AnswerDelta | Exception | None] = asyncio.Queue()
        abandoned = threading.Event()

        def hand_over(item: AnswerDelta | Exception | None) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def drive() -> None:
            deltas: Iterator[AnswerDelta] = iter(())
            try:
                if abandoned.is_set():  # timed out while queued: nobody waits for it any more
                    return
                deltas = twin.stream(messages, params)  # retrieves: may fail before any piece
                for delta in deltas:
                    if abandoned.is_set():
                        return
                    hand_over(delta)
                hand_over(None)
            except Exception as error:  # handed to the request that owns it
                hand_over(error)
            finally:
                close_if_closable(deltas)

        self._workers.submit(drive)
        deadline = loop.time() + self.serving.generation_timeout_s
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
                except TimeoutError as error:
                    raise self._timeout() from error
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise _failed(item) from item
                if item.answer is not None:
                    self._finished(item.answer)
                yield item
        finally:
            abandoned.set()

    def _timeout(self) -> GenerationTimeoutError:
        return GenerationTimeoutError(
            f"no answer within {self.serving.generation_timeout_s:g} s "
            "(serving.generation_timeout_s); ask for fewer max_tokens or retry later",
            code="generation_timeout",
        )

    def _finished(self, answer: TwinAnswer) -> None:
        metrics.ANSWER_SECONDS.observe(answer.latency_ms / 1000)
        metrics.TOKENS_GENERATED.inc(answer.completion_tokens)
        if self.recorder is not None:
            self.recorder.record(answer)

    # --- OpenAI-compatible ------------------------------------------------------------------

    async def create_chat_completion(
        self, request: ChatCompletionRequest, raw_request: Request | None = None
    ) -> BaseModel | AsyncIterator[str]:
        return await self._complete(request, CHAT)

    async def create_completion(
        self, request: CompletionRequest, raw_request: Request | None = None
    ) -> BaseModel | AsyncIterator[str]:
        return await self._complete(request, TEXT)

    async def _complete(
        self, request: ChatCompletionRequest | CompletionRequest, framing: Framing
    ) -> BaseModel | AsyncIterator[str]:
        request_id = completion_id(framing.id_prefix)
        messages, params = request.chat(), request.params(self.serving)
        if not request.stream:
            return framing.whole(await self.answer(messages, params), request_id)
        created = int(time.time())
        return await _events(
            self.stream(messages, params),
            piece=lambda text, first: framing.piece(request_id, self.name, created, text, first),
            last=lambda answer: framing.last(answer, request_id, created),
        )

    async def rate(self, request: RatingRequest) -> RatingReceipt:
        """Record a user's rating of one of the twin's answers, with a copy of the answer.

        The answer is looked up in this process first, then among the recorded batches; an
        id neither knows is refused (404), so a rating always refers to a real answer."""
        self._twin()
        recorder, ratings = self.recorder, self.ratings
        if recorder is None or ratings is None:
            raise FeedbackOffError(
                "this server does not record its answers (serving.record_answers is false), "
                "so they cannot be rated",
                code="feedback_off",
            )
        try:
            answer = recorder.recent(request.answer_id) or await asyncio.to_thread(
                recorder.find, request.answer_id
            )
        except Exception as error:
            raise NotReadyError(
                f"could not look answer {request.answer_id!r} up in the recorded answers "
                f"({root_cause(error)}); check that MinIO is reachable, then retry",
                code="answers_unreachable",
            ) from error
        if answer is None:
            raise UnknownAnswerError(
                f"no answer {request.answer_id!r} was given by {self.served.name}: use the "
                "answer id that `twin ask` printed or the completion's answer_id carried. An "
                "answer just given by another replica is found once it is recorded (within "
                f"serving.record_flush_s = {self.serving.record_flush_s:g} s): retry then",
                param="answer_id",
                code="answer_not_found",
            )
        rating = AnswerRating(
            id=f"rating-{uuid.uuid4().hex}",
            answer_id=answer.id,
            rating=request.rating,
            comment=request.comment,
            created=utc_now(),
            answer=answer,
        )
        ratings.add(rating)
        log.info(
            "answer rated",
            extra={"answer_id": answer.id, "rating": rating.rating, "rating_id": rating.id},
        )
        return RatingReceipt(
            id=rating.id,
            answer_id=rating.answer_id,
            rating=rating.rating,
            comment=rating.comment,
            created=int(rating.created.timestamp()),
        )

    # --- KServe v1 / v2 ---------------------------------------------------------------------

    async def predict(
        self,
        payload: dict[str, Any] | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        if isinstance(payload, InferRequest):
            return await self._infer_v2(payload)
        return await self._predict_v1(payload)

    async def _answer_all(self, questions: list[Question]) -> list[TwinAnswer]:
        if len(questions) > self.serving.max_messages:
            raise BadRequestError(
                f"{len(questions)} questions in one request is over this server's limit of "
                f"{self.serving.max_messages} (serving.max_messages)",
                code="too_many_questions",
            )
        return list(
            await asyncio.gather(
                *(
                    self.answer(q.chat(), GenerationParams(max_tokens=q.budget(self.serving)))
                    for q in questions
                )
            )
        )

    async def _predict_v1(self, payload: object) -> dict[str, Any]:
        try:
            request = PredictRequest.model_validate(payload, context=self.serving)
        except ValidationError as error:
            raise from_validation(error, what="v1 predict body") from error
        answers = await self._answer_all(request.instances)
        return {
            "predictions": [
                {
                    "answer_id": a.id,
                    "text": a.text,
                    "sources": [s.model_dump(mode="json") for s in a.sources],
                    "model_version": a.model_version,
                }
                for a in answers
            ]
        }

    async def _infer_v2(self, request: InferRequest) -> InferResponse:
        questions = self._v2_questions(request)
        answers = await self._answer_all(questions)
        shape = [len(answers)]

        def output(name: str, values: list[str]) -> InferOutput:
            return InferOutput(name=name, shape=shape, datatype="BYTES", data=values)

        return InferResponse(
            response_id=request.id or uuid.uuid4().hex,
            model_name=self.name,
            infer_outputs=[
                output("answer", [a.text for a in answers]),
                output(
                    "sources",
                    [json.dumps([s.model_dump(mode="json") for s in a.sources]) for a in answers],
                ),
                output("answer_id", [a.id for a in answers]),
            ],
        )

    def _v2_questions(self, request: InferRequest) -> list[Question]:
        tensor = request.get_input_by_name(_QUESTION_INPUT)
        if tensor is None:
            names = [i.name for i in request.inputs]
            raise BadRequestError(
                f"v2 infer needs a BYTES input named '{_QUESTION_INPUT}'; got inputs {names}",
                param="inputs",
            )
        if tensor.datatype != "BYTES":
            raise BadRequestError(
                f"input '{_QUESTION_INPUT}' must have datatype BYTES, not {tensor.datatype}",
                param="inputs.question.datatype",
            )
        parameters = dict(request.parameters or {})
        try:
            return [
                Question.model_validate(
                    {"question": text, "max_tokens": parameters.get("max_tokens")},
                    context=self.serving,
                )
                for text in _strings(tensor.data)
            ]
        except ValidationError as error:
            raise from_validation(error, what="v2 infer request") from error


def _strings(data: object) -> list[object]:
    """BYTES tensor elements, flattened; bytes decoded, anything else left for validation."""
    if isinstance(data, (list, tuple)):
        return [item for element in data for item in _strings(element)]
    if isinstance(data, bytes):
        try:
            return [data.decode("utf-8")]
        except UnicodeDecodeError as error:
            raise BadRequestError(f"input '{_QUESTION_INPUT}' is not UTF-8: {error}") from error
    return [data]


def _failed(error: Exception) -> GenerationFailedError:
    log.error("answer failed", exc_info=error)
    return GenerationFailedError(f"the twin could not answer: {root_cause(error)}")


async def _events(
    deltas: AsyncGenerator[AnswerDelta, None],
    *,
    piece: Callable[[str, bool], BaseModel],
    last: Callable[[TwinAnswer], BaseModel],
) -> AsyncIterator[str]:
    """Server-sent events of one answer, OpenAI style.

    The first delta is awaited before returning, so a request that fails at once (not ready,
    timed out in the queue, retrieval down) gets a proper HTTP error status; a failure after
    that can only be reported in the stream, as an ``error`` event the OpenAI client raises.
    """
    first = await anext(deltas)

    async def events() -> AsyncIterator[str]:
        delta, is_first = first, True
        try:
            while True:
                if delta.text or is_first:
                    yield sse(piece(delta.text, is_first))
                    is_first = False
                if delta.answer is not None:
                    yield sse(last(delta.answer))
                delta = await anext(deltas)
        except StopAsyncIteration:
            yield SSE_DONE
        except ServingError as error:
            count(error, "stream")
            yield sse_error(error)
        finally:
            await deltas.aclose()

    return events()
