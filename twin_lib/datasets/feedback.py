"""Reviewers' corrections of served answers, as preference pairs for the next training run.

A user rated one of the twin's answers; a reviewer wrote what it should have said. The
correction is chosen over the answer the twin gave, for the same question. Each pair keeps
its lineage to the answer: the document id and source are ``answer:<answer id>`` (so the
dataset manifest lists every answer it learned from), the chunk ids are those the answer was
grounded in. The pairs join the train split only: the test split stays the author's held-out
documents, so evaluations of two versions remain comparable.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from twin_lib.datasets.examples import example_id
from twin_lib.domain.chat import ChatMessage
from twin_lib.domain.datasets import PreferenceExample

FEEDBACK_GENERATOR = "feedback"


class FeedbackPair(BaseModel):
    """One correction of one served answer (one line of the collected corrections)."""

    answer_id: str
    question: str
    answer: str = Field(description="what the twin said (rejected)")
    correction: str = Field(description="what a reviewer says it should have said (chosen)")
    reviewer: str
    model_version: str
    chunk_ids: list[str] = Field(default_factory=list)
    ratings: list[str] = Field(default_factory=list, description="users' up/down, oldest first")


def answer_source(answer_id: str) -> str:
    return f"answer:{answer_id}"


def feedback_examples(
    pairs: Sequence[FeedbackPair], system: ChatMessage
) -> list[PreferenceExample]:
    """One preference example per pair, asked as the twin is asked (system turn, question)."""
    return [
        PreferenceExample(
            example_id=example_id(FEEDBACK_GENERATOR, pair.answer_id, pair.correction),
            prompt=[system, ChatMessage(role="user", content=pair.question)],
            chosen=[ChatMessage(role="assistant", content=pair.correction)],
            rejected=[ChatMessage(role="assistant", content=pair.answer)],
            document_id=answer_source(pair.answer_id),
            chunk_ids=pair.chunk_ids,
            source_url=answer_source(pair.answer_id),
            raw_snapshot_id="",
            generator=FEEDBACK_GENERATOR,
        )
        for pair in pairs
    ]
