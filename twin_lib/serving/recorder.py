"""Every answer the twin gives is kept in object storage, so it can be reviewed and fed back.

Answers are written in batches of JSON lines by a background thread, never on the request
path: a slow or unreachable MinIO costs the client nothing. A failed write keeps its batch
for the next attempt, so no answer is lost while the process lives; only when storage stays
down long enough to fill ``record_max_pending`` are the oldest answers dropped, loudly.

Users' ratings of answers are recorded the same way under ``serving.feedback_prefix``. Each
rating carries a copy of the answer it rates, so it stays joinable to it by answer id even
when the answer's own batch is not written yet, or never is (dropped, or the process died).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict, deque
from datetime import datetime
from typing import ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

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


class AnswerRating(BaseModel):
    """One user's thumbs up or down on one answer, with the answer it rates."""

    id: str
    answer_id: str
    rating: Literal["up", "down"]
    comment: str | None = None
    created: datetime
    answer: AnswerRecord = Field(description="a copy: the rating never depends on its batch")


Record = TypeVar("Record", AnswerRecord, AnswerRating)


def batch_key(prefix: str, model: ServedModel, first: AnswerRecord | AnswerRating) -> str:
    """``{prefix}/{name}/{version}/{date}/{time}-{first id}.jsonl``: sortable by time, unique
    by the first answer's id, grouped so one version's answers are one listing."""
    stamp = first.created
    return (
        f"{prefix.strip('/')}/{model.name}/{model.version}/{stamp:%Y-%m-%d}/"
        f"{stamp:%H%M%S%f}-{first.id}.jsonl"
    )


class BatchRecorder(Generic[Record]):
    """Queues records and writes them to ``bucket`` in batches from one background thread."""

    what: ClassVar[str] = "records"

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        model: ServedModel,
        serving: ServingSettings,
        *,
        prefix: str,
    ) -> None:
        self._store = store
        self._bucket = bucket
        self._model = model
        self._prefix = prefix
        self._batch_size = serving.record_batch_size
        self._flush_s = serving.record_flush_s
        self._max_pending = serving.record_max_pending
        self._pending: deque[Record] = deque()
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
            self._thread = threading.Thread(
                target=self._run, name=f"{self.what}-recorder", daemon=True
            )
            self._thread.start()

    def add(self, record: Record) -> None:
        """Queue one record; wakes the writer when a batch is full. Never blocks on I/O."""
        with self._lock:
            if len(self._pending) >= self._max_pending:
                dropped = self._pending.popleft()
                self._dropped()
                log.error(
                    f"{self.what} queue full: dropped the oldest unrecorded one; "
                    "check that MinIO is reachable and the bucket exists",
                    extra={
                        "dropped_id": dropped.id,
                        "max_pending": self._max_pending,
                        "bucket": self._bucket,
                    },
                )
            self._pending.append(record)
            full = len(self._pending) >= self._batch_size
        if full:
            self._wake.set()

    def _dropped(self) -> None:
        """Counts a record dropped from a full queue (answers have a metric of their own)."""

    def _recorded(self, count: int) -> None:
        """Counts written records (answers have a metric of their own)."""

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

    def _write(self, batch: list[Record]) -> bool:
        key = batch_key(self._prefix, self._model, batch[0])
        body = "".join(json.dumps(record.model_dump(mode="json")) + "\n" for record in batch)
        try:
            self._store.put_bytes(
                self._bucket, key, body.encode("utf-8"), content_type="application/x-ndjson"
            )
        except Exception as error:
            metrics.ERRORS.labels(kind="record_flush").inc()
            log.error(
                f"could not record {self.what}; keeping them for the next attempt",
                extra={
                    "bucket": self._bucket,
                    "key": key,
                    self.what: len(batch),
                    "pending": self.pending,
                    "error": root_cause(error),
                },
            )
            return False
        self._recorded(len(batch))
        log.info(
            f"recorded {self.what}",
            extra={"bucket": self._bucket, "key": key, self.what: len(batch)},
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
                f"stopping with unrecorded {self.what}: they are lost with this process",
                extra={"bucket": self._bucket, self.what: left},
            )


class AnswerRecorder(BatchRecorder[AnswerRecord]):
    """Records answers, and finds one by id for a rating: among the last
    ``serving.feedback_memory`` answers in memory, else among the recorded batches of the
    served model (each batch read once per process)."""

    what = "answers"

    def __init__(
        self, store: ObjectStore, bucket: str, model: ServedModel, serving: ServingSettings
    ) -> None:
        super().__init__(store, bucket, model, serving, prefix=serving.answers_prefix)
        self._memory = serving.feedback_memory
        self._recent: OrderedDict[str, AnswerRecord] = OrderedDict()
        self._scan_lock = threading.Lock()
        self._scanned: set[str] = set()
        self._forgot = False

    def record(self, answer: TwinAnswer) -> None:
        record = AnswerRecord.of(answer)
        with self._lock:
            self._remember(record)
        self.add(record)

    def _remember(self, record: AnswerRecord) -> None:
        """Called with ``_lock`` held."""
        if self._memory:
            self._recent[record.id] = record
            self._recent.move_to_end(record.id)
            while len(self._recent) > self._memory:
                self._recent.popitem(last=False)
                self._forgot = True  # batches read before may hold it: read them again

    def _dropped(self) -> None:
        metrics.ANSWERS_DROPPED.inc()

    def _recorded(self, count: int) -> None:
        metrics.ANSWERS_RECORDED.inc(count)

    def recent(self, answer_id: str) -> AnswerRecord | None:
        """The answer if this process still holds it (queued or remembered); no I/O."""
        with self._lock:
            found = self._recent.get(answer_id)
            if found is None:
                found = next((r for r in self._pending if r.id == answer_id), None)
            return found

    def find(self, answer_id: str) -> AnswerRecord | None:
        """The answer from memory, else from the model's recorded batches, newest first.
        Blocking: call it off the event loop."""
        found = self.recent(answer_id)
        if found is not None:
            return found
        prefix = f"{self._prefix.strip('/')}/{self._model.name}/"
        with self._scan_lock:
            if self._forgot:
                self._forgot = False
                self._scanned.clear()
            keys = sorted(
                (info.key for info in self._store.list(self._bucket, prefix)),
                key=lambda key: key.split("/")[-2:],
                reverse=True,
            )
            for key in keys:
                if key in self._scanned:
                    continue
                records = [
                    AnswerRecord.model_validate_json(line)
                    for line in self._store.get_bytes(self._bucket, key).splitlines()
                    if line.strip()
                ]
                self._scanned.add(key)
                with self._lock:
                    for record in records:
                        self._remember(record)
                match = next((r for r in records if r.id == answer_id), None)
                if match is not None:
                    return match
        return self.recent(answer_id)


class RatingRecorder(BatchRecorder[AnswerRating]):
    """Records users' ratings under ``serving.feedback_prefix``."""

    what = "ratings"

    def __init__(
        self, store: ObjectStore, bucket: str, model: ServedModel, serving: ServingSettings
    ) -> None:
        super().__init__(store, bucket, model, serving, prefix=serving.feedback_prefix)
