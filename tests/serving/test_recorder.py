"""Answer recording against the real MinIO: batches, timed flushes, retries, the memory cap."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from twin_lib.serving.contracts import ServedModel, Source, TwinAnswer
from twin_lib.serving.recorder import AnswerRecorder
from twin_lib.settings import ServingSettings, TwinSettings
from twin_lib.storage import ObjectStore

MODEL = ServedModel(
    name="twin-rec",
    version="v7",
    status="approved",
    author="Ada",
    collection="Chunks",
    feature_version="f1",
    system_prompt="You are Ada.",
    model_dir=Path("/nonexistent"),
    merged_uri="s3://twin-models/twin-rec/v7/merged",
)


def _answer(n: int) -> TwinAnswer:
    return TwinAnswer(
        id=f"ans-{n:03d}-{uuid.uuid4().hex[:6]}",
        model="twin",
        model_version=MODEL.label,
        question=f"question {n}?",
        text=f"answer {n}",
        sources=[Source(chunk_id=f"chunk-{n}", url=f"https://x.test/{n}", title="t", score=0.5)],
        prompt_tokens=10,
        completion_tokens=n,
        finish_reason="stop",
        latency_ms=12.5,
    )


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def _serving(prefix: str, **limits: object) -> ServingSettings:
    return ServingSettings(answers_prefix=prefix, **limits)


def _recorded(store: ObjectStore, bucket: str, prefix: str) -> tuple[list[str], list[dict]]:
    keys = sorted(info.key for info in store.list(bucket, f"{prefix}/"))
    lines = [
        json.loads(line)
        for key in keys
        for line in store.get_bytes(bucket, key).decode("utf-8").splitlines()
    ]
    return keys, lines


def test_full_batches_are_written_by_the_thread_and_the_rest_on_stop(
    object_store: ObjectStore, stack_settings: TwinSettings
) -> None:
    bucket, prefix = stack_settings.minio.datasets_bucket, f"answers-{uuid.uuid4().hex[:8]}"
    recorder = AnswerRecorder(
        object_store, bucket, MODEL, _serving(prefix, record_batch_size=3, record_flush_s=60)
    )
    recorder.start()
    answers = [_answer(n) for n in range(7)]
    for answer in answers:
        recorder.record(answer)
    deadline = time.monotonic() + 10
    while recorder.pending > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recorder.pending == 1, "two full batches should be written without waiting 60 s"
    recorder.stop()

    keys, lines = _recorded(object_store, bucket, prefix)
    assert [line["id"] for line in lines] == [a.id for a in answers]
    assert len(keys) == 3
    day = answers[0].created.strftime("%Y-%m-%d")
    assert keys[0].startswith(f"{prefix}/twin-rec/v7/{day}/")
    assert keys[0].endswith(f"-{answers[0].id}.jsonl")
    first = lines[0]
    assert first["question"] == "question 0?"
    assert first["chunk_ids"] == ["chunk-0"]
    assert first["answer"] == "answer 0"
    assert first["model_version"] == "twin-rec/v7"
    assert first["latency_ms"] == 12.5
    assert first["created"]


def test_a_partial_batch_is_written_after_record_flush_s(
    object_store: ObjectStore, stack_settings: TwinSettings
) -> None:
    bucket, prefix = stack_settings.minio.datasets_bucket, f"answers-{uuid.uuid4().hex[:8]}"
    recorder = AnswerRecorder(
        object_store, bucket, MODEL, _serving(prefix, record_batch_size=100, record_flush_s=0.2)
    )
    recorder.start()
    try:
        recorder.record(_answer(1))
        deadline = time.monotonic() + 10
        while not _recorded(object_store, bucket, prefix)[1] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_recorded(object_store, bucket, prefix)[1]) == 1
    finally:
        recorder.stop()


def test_a_failed_flush_keeps_the_batch_and_a_later_flush_writes_it(
    object_store: ObjectStore,
) -> None:
    """The bucket does not exist at first (MinIO refuses every write), then it is created."""
    bucket, prefix = f"late-{uuid.uuid4().hex[:10]}", "answers"
    recorder = AnswerRecorder(object_store, bucket, MODEL, _serving(prefix, record_batch_size=2))
    answers = [_answer(n) for n in range(3)]
    for answer in answers:
        recorder.record(answer)
    failures = REGISTRY.get_sample_value("twin_errors_total", {"kind": "record_flush"}) or 0.0

    assert recorder.flush() == 0
    assert recorder.pending == 3
    assert REGISTRY.get_sample_value("twin_errors_total", {"kind": "record_flush"}) == failures + 1

    object_store.ensure_buckets(bucket)
    recorded_before = _metric("twin_answers_recorded_total")
    assert recorder.flush() == 3
    assert recorder.pending == 0
    assert _metric("twin_answers_recorded_total") == recorded_before + 3
    _, lines = _recorded(object_store, bucket, prefix)
    assert [line["id"] for line in lines] == [a.id for a in answers]


def test_the_queue_is_bounded_and_drops_the_oldest(object_store: ObjectStore) -> None:
    bucket = f"late-{uuid.uuid4().hex[:10]}"
    recorder = AnswerRecorder(
        object_store, bucket, MODEL, _serving("answers", record_max_pending=2)
    )
    dropped_before = _metric("twin_answers_dropped_total")
    answers = [_answer(n) for n in range(3)]
    for answer in answers:
        recorder.record(answer)
    assert recorder.pending == 2
    assert _metric("twin_answers_dropped_total") == dropped_before + 1

    object_store.ensure_buckets(bucket)
    recorder.stop()
    _, lines = _recorded(object_store, bucket, "answers")
    assert [line["id"] for line in lines] == [a.id for a in answers[1:]]


@pytest.mark.parametrize("size", [1, 4])
def test_stop_without_start_flushes_everything(
    object_store: ObjectStore, stack_settings: TwinSettings, size: int
) -> None:
    bucket, prefix = stack_settings.minio.datasets_bucket, f"answers-{uuid.uuid4().hex[:8]}"
    recorder = AnswerRecorder(object_store, bucket, MODEL, _serving(prefix, record_batch_size=size))
    for n in range(5):
        recorder.record(_answer(n))
    recorder.stop()
    keys, lines = _recorded(object_store, bucket, prefix)
    assert len(lines) == 5
    assert len(keys) == -(-5 // size)
