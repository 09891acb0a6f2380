"""Feedback steps: users' ratings (recorded by the model server) to reviewers in Argilla, and
their corrections back to object storage, where the next preference dataset reads them.

``push_feedback`` sends every rated answer of a model to the feedback dataset (idempotent).
``collect_feedback`` writes every submitted correction, joined by answer id with the answer
and its ratings, to one JSON-lines object per model (``datasets.feedback_pairs_key`` points
the preference dataset at it). Both read the ratings from ``serving.feedback_prefix``.
"""

from __future__ import annotations

import json
import logging

from pydantic import BaseModel, ValidationError

from twin_lib.datasets.feedback import FeedbackPair
from twin_lib.promotion.feedback import ArgillaFeedback, FeedbackPush, rated_answers
from twin_lib.serving.recorder import AnswerRating
from twin_lib.settings import MinioSettings, TwinSettings
from twin_lib.storage import ObjectStore
from twin_lib.storage.errors import ObjectNotFoundError

log = logging.getLogger(__name__)


class FeedbackError(ValueError):
    """Nothing to send or read; the message says what to do."""


class FeedbackCollection(BaseModel):
    """What ``collect_feedback`` wrote: the pairs and where they are."""

    model: str
    pairs: int
    answers: int = 0
    key: str
    uri: str


def _model_name(settings: TwinSettings, name: str | None) -> str:
    return name or settings.serving.model_name or settings.registry.default_model


def corrections_key(settings: TwinSettings, name: str | None = None) -> str:
    """Where a model's collected corrections live in ``minio.datasets_bucket``."""
    prefix = settings.serving.feedback_prefix.strip("/")
    return f"{prefix}-corrections/{_model_name(settings, name)}.jsonl"


def read_ratings(settings: TwinSettings, name: str | None = None) -> list[AnswerRating]:
    """Every recorded rating of the model's answers (all versions). A line that is not a
    rating is reported and skipped, never silently."""
    model = _model_name(settings, name)
    store, bucket = ObjectStore(settings.minio), settings.minio.datasets_bucket
    prefix = f"{settings.serving.feedback_prefix.strip('/')}/{model}/"
    ratings = []
    for info in store.list(bucket, prefix):
        for number, line in enumerate(store.get_bytes(bucket, info.key).splitlines(), 1):
            try:
                ratings.append(AnswerRating.model_validate_json(line))
            except ValidationError as error:
                log.error(
                    "not a rating: skipped",
                    extra={"key": info.key, "line": number, "error": str(error)},
                )
    return ratings


def push_feedback(settings: TwinSettings, name: str | None = None) -> FeedbackPush:
    """Send every rated answer of the model to the Argilla feedback dataset."""
    ratings = read_ratings(settings, name)
    if not ratings:
        raise FeedbackError(
            f"no ratings of {_model_name(settings, name)}'s answers under "
            f"s3://{settings.minio.datasets_bucket}/{settings.serving.feedback_prefix}/ yet: "
            "users rate answers with `twin rate ANSWER_ID up|down` or POST "
            "/openai/v1/feedback (the model server records them within "
            "serving.record_flush_s)"
        )
    pushed = ArgillaFeedback(settings.argilla).push(rated_answers(ratings))
    log.info(
        "rated answers pushed",
        extra={"dataset": pushed.dataset, "answers": pushed.answers, "added": pushed.added},
    )
    return pushed


def collect_feedback(settings: TwinSettings, name: str | None = None) -> FeedbackCollection:
    """Write the model's corrections as preference pairs, with lineage to each answer; the
    question and answer come from the recorded rating (exactly what was served) when there
    is one."""
    model = _model_name(settings, name)
    rated = {r.answer.id: r for r in rated_answers(read_ratings(settings, model))}
    pairs = []
    for correction in ArgillaFeedback(settings.argilla).corrections():
        if not correction.model_version.startswith(f"{model}/"):
            continue
        found = rated.get(correction.answer_id)
        pairs.append(
            FeedbackPair(
                answer_id=correction.answer_id,
                question=found.answer.question if found else correction.question,
                answer=found.answer.answer if found else correction.answer,
                correction=correction.correction,
                reviewer=correction.reviewer,
                model_version=correction.model_version,
                chunk_ids=found.answer.chunk_ids if found else [],
                ratings=[r.rating for r in found.ratings] if found else [],
            )
        )
    key, bucket = corrections_key(settings, model), settings.minio.datasets_bucket
    body = "".join(pair.model_dump_json() + "\n" for pair in pairs)
    store = ObjectStore(settings.minio)
    store.ensure_buckets(bucket)
    store.put_bytes(bucket, key, body.encode("utf-8"), content_type="application/x-ndjson")
    collected = FeedbackCollection(
        model=model,
        pairs=len(pairs),
        answers=len({pair.answer_id for pair in pairs}),
        key=key,
        uri=f"s3://{bucket}/{key}",
    )
    log.info(
        "corrections collected",
        extra={"model": model, "pairs": collected.pairs, "answers": collected.answers, "key": key},
    )
    return collected


def read_feedback_pairs(minio: MinioSettings, key: str) -> list[FeedbackPair]:
    """The corrections at ``key`` in the datasets bucket, in the order written."""
    try:
        body = ObjectStore(minio).get_bytes(minio.datasets_bucket, key)
    except ObjectNotFoundError as error:
        raise FeedbackError(
            f"no corrections at s3://{minio.datasets_bucket}/{key} "
            "(datasets.feedback_pairs_key): run `twin feedback collect` first, or unset "
            "TWIN_DATASETS__FEEDBACK_PAIRS_KEY to build without them"
        ) from error
    return [FeedbackPair.model_validate(json.loads(line)) for line in body.splitlines() if line]
