"""Every answer the twin gives is kept in object storage, so it can be reviewed and fed back.

Answers are written in batches of JSON lines by a background thread, never on the request
path: a slow or unreachable MinIO costs the client nothing. A failed write keeps its batch
for the next attempt, so no answer is lost while the process lives; only when storage stays
down long enough to fill ``record_max_pending`` are the oldest answers dropped, loudly.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from datetime import datetime

from pydantic import BaseModel

from twin_lib.serving import metrics
from twin_lib.serving.contracts import ServedModel, TwinAnswer
from twin_lib.settings import ServingSettings
from twin_lib.storage import ObjectStore
from twin_lib.storage.retry import root_cause

log = logging.getLogger(__name__)


class AnswerRecord(BaseModel):
    """One line of a recorded batch: what was asked, what was found, what was said."""

    id: str
    question: str
    chunk_ids: list[str]
    answer: str
    model_version: str
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    created: datetime

    @classmethod
    def of(cls, answer: TwinAnswer) -> AnswerRecord:
        return cls(
            id=answer.id,
            question=answer.question,
            chunk_ids=[source.chunk_id for source in answer.sources],
            answer=answer.text,
            model_version=answer.model_version,
            latency_ms=answer.latency_ms,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            created=answer.created,
        )


def batch_key(prefix: str, model: ServedModel, first: AnswerRecord) -> str:
    """``{prefix}/{name}/{version}/{date}/{time}-{first id}.jsonl``: sortable by time, unique
    by the first answer's id, grouped so one version's answers are one listing."""
    stamp = first.created
    return (
        f"{prefix.strip('/')}/{model.name}/{model.version}/{stamp:%Y-%m-%d}/"
        f"{stamp:%H%M%S%f}-{first.id}.jsonl"
    )


class AnswerRecorder:
    """Queues answers and writes them to ``bucket`` in batches from one background thread."""

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        model: ServedModel,
        serving: ServingSettings,
    ) -> None:
        self._store = store
        self._bucket = bucket
        self._model = model
        self._prefix = serving.answers_prefix
        self._batch_size = serving.record_batch_size
        self._flush_s = serving.record_flush_s
        self._max_pending = serving.record_max_pending
        self._pending: deque[AnswerRecord] = deque()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="answer-recorder", daemon=True)
            self._thread.start()

    def record(self, answer: TwinAnswer) -> None:
        """Queue one answer; wakes the writer when a batch is full. Never blocks on I/O."""
        with self._lock:
            if len(self._pending) >= self._max_pending:
                dropped = self._pending.popleft()
                metrics.ANSWERS_DROPPED.inc()
                log.error(
                    "answer queue full: dropped the oldest unrecorded answer; "
                    "check that MinIO is reachable and the bucket exists",
                    extra={
                        "dropped_id": dropped.id,
                        "max_pending": self._max_pending,
                        "bucket": self._bucket,
                    },
                )
            self._pending.append(AnswerRecord.of(answer))
            full = len(self._pending) >= self._batch_size
        if full:
            self._wake.set()

    def flush(self, *, full_only: bool = False) -> int:
        """Write pending answers now (only whole batches if ``full_only``); returns how many
        were written. Stops at the first failed batch and keeps it, and the rest, queued."""
        written = 0
        with self._flush_lock:
            while True:
                with self._lock:
                    size = min(self._batch_size, len(self._pending))
                    batch = [self._pending[i] for i in range(size)]
                if not batch or (full_only and size < self._batch_size):
                    return written
                if not self._write(batch):
                    return written
                with self._lock:
                    sent = {record.id for record in batch}
                    while self._pending and self._pending[0].id in sent:
                        self._pending.popleft()
                written += len(batch)

    def _write(self, batch: list[AnswerRecord]) -> bool:
        key = batch_key(self._prefix, self._model, batch[0])
        body = "".join(json.dumps(record.model_dump(mode="json")) + "\n" for record in batch)
        try:
            self._store.put_bytes(
                self._bucket, key, body.encode("utf-8"), content_type="application/x-ndjson"
            )
        except Exception as error:
            metrics.ERRORS.labels(kind="record_flush").inc()
            log.error(
                "could not record answers; keeping them for the next attempt",
                extra={
                    "bucket": self._bucket,
                    "key": key,
                    "answers": len(batch),
                    "pending": self.pending,
                    "error": root_cause(error),
                },
            )
            return False
        metrics.ANSWERS_RECORDED.inc(len(batch))
        log.info(
            "recorded answers", extra={"bucket": self._bucket, "key": key, "answers": len(batch)}
        )
        return True

    def _run(self) -> None:
        while not self._stopping.is_set():
            batch_full = self._wake.wait(self._flush_s)
            self._wake.clear()
            self.flush(full_only=batch_full and not self._stopping.is_set())

    def stop(self) -> None:
        """Stop the writer and flush what is left; logs what could not be written."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()
        left = self.pending
        if left:
            log.error(
                "stopping with unrecorded answers: they are lost with this process",
                extra={"bucket": self._bucket, "answers": left},
            )
