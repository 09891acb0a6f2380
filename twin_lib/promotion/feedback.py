"""Users' ratings of served answers, put in front of reviewers who correct them in Argilla.

Every rated answer becomes one record of the feedback dataset (``argilla.feedback_dataset``)
whose id is the answer id, so pushing again adds only new answers and refreshes the ratings
shown on the others, never touching what reviewers wrote. The reviewer sees the question, the
twin's answer, the users' thumbs and comments, and writes the answer the author would have
given (pre-filled with the twin's, to edit). A submitted correction that differs from the
served answer is a correction; an unchanged one says the answer was right and makes no pair.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from twin_lib.promotion.argilla_reviews import ArgillaReviewBackend, submitted, username
from twin_lib.serving.recorder import AnswerRating, AnswerRecord
from twin_lib.settings import ArgillaSettings

if TYPE_CHECKING:
    import argilla as rg

log = logging.getLogger(__name__)

CORRECTION = "correction"
SERVED_ANSWER_AGENT = "served-answer"
THUMB = {"up": "👍 up", "down": "👎 down"}
# Argilla refuses an empty field; a blank answer is shown as this (and rated as it was).
NO_ANSWER = "(the twin wrote nothing)"

GUIDELINES = """\
Users of the twin rated these answers. For each: read the question, the twin's answer and
what users said of it, then write in **Corrected answer** what the author would have
answered, in the author's own voice and supported by what the author wrote. The field
starts with the twin's answer: edit it. Submit it unchanged if the answer was right; discard
the record if you cannot tell. Corrections become training pairs (yours chosen, the twin's
rejected) in the next preference dataset.
"""


class RatedAnswer(BaseModel):
    """One served answer and every rating users gave it, oldest first."""

    answer: AnswerRecord
    ratings: list[AnswerRating] = Field(default_factory=list)


class Correction(BaseModel):
    """A reviewer's submitted correction of one served answer."""

    answer_id: str
    question: str
    answer: str
    correction: str
    reviewer: str
    model_version: str


class FeedbackPush(BaseModel):
    dataset: str
    answers: int
    added: int
    location: str


def rated_answers(ratings: list[AnswerRating]) -> list[RatedAnswer]:
    """Ratings grouped by the answer they rate (each carries its copy of the answer)."""
    grouped: dict[str, RatedAnswer] = {}
    for rating in sorted(ratings, key=lambda r: (r.created, r.id)):
        grouped.setdefault(rating.answer_id, RatedAnswer(answer=rating.answer)).ratings.append(
            rating
        )
    return sorted(grouped.values(), key=lambda rated: rated.answer.id)


def _said(rated: RatedAnswer) -> str:
    return "\n".join(
        f"- {THUMB[r.rating]}" + (f": {r.comment}" if r.comment else "") for r in rated.ratings
    )


class ArgillaFeedback:
    """The feedback dataset in the Argilla server of ``settings`` (errors as reviews give)."""

    def __init__(self, settings: ArgillaSettings) -> None:
        self.settings = settings
        self.server = ArgillaReviewBackend(settings)
        self.name = settings.feedback_dataset

    def dataset_settings(self) -> rg.Settings:
        import argilla as rg

        return rg.Settings(
            guidelines=GUIDELINES,
            fields=[
                rg.TextField(name="question", title="Question", use_markdown=False),
                rg.TextField(name="answer", title="The twin's answer", use_markdown=False),
                rg.TextField(name="feedback", title="What users said", use_markdown=True),
            ],
            questions=[
                rg.TextQuestion(
                    name=CORRECTION,
                    title="Corrected answer: what the author would have said",
                    required=True,
                )
            ],
            metadata=[
                rg.TermsMetadataProperty(name="rating", options=["up", "down"]),
                rg.TermsMetadataProperty(name="model_version"),
            ],
            distribution=rg.TaskDistribution(min_submitted=1),
        )

    def _dataset(self, client: rg.Argilla, *, create: bool) -> rg.Dataset:
        return self.server.named_dataset(
            client,
            self.name,
            self.dataset_settings,
            create=create,
            missing="push rated answers first (`twin feedback push`)",
        )

    def _record(self, rated: RatedAnswer) -> rg.Record:
        import argilla as rg

        answer = rated.answer
        shown = answer.answer if answer.answer.strip() else NO_ANSWER
        return rg.Record(
            id=answer.id,
            fields={"question": answer.question, "answer": shown, "feedback": _said(rated)},
            metadata={"rating": rated.ratings[-1].rating, "model_version": answer.model_version},
            suggestions=[
                rg.Suggestion(question_name=CORRECTION, value=shown, agent=SERVED_ANSWER_AGENT)
            ],
        )

    def push(self, answers: list[RatedAnswer]) -> FeedbackPush:
        """Upsert one record per rated answer, keyed by answer id (see the review push for
        why records already there are sent again)."""
        client = self.server.client()
        with self.server.errors(f"pushing rated answers to {self.name!r}", self.name):
            dataset = self._dataset(client, create=True)
            present = {
                record.id
                for record in dataset.records(with_suggestions=False, with_responses=False)
            }
            batch = self.server.batch
            for start in range(0, len(answers), batch):
                chunk = answers[start : start + batch]
                dataset.records.log([self._record(rated) for rated in chunk], batch_size=batch)
                log.info(
                    "rated answers sent",
                    extra={"dataset": self.name, "sent": start + len(chunk), "of": len(answers)},
                )
        added = sum(1 for rated in answers if rated.answer.id not in present)
        return FeedbackPush(
            dataset=self.name,
            answers=len(answers),
            added=added,
            location=f"{self.settings.url}/dataset/{dataset.id}/annotation-mode",
        )

    def corrections(self) -> list[Correction]:
        """Every submitted correction that changes the served answer, by answer id and
        reviewer."""
        client = self.server.client()
        known: dict[Any, str] = {}
        found = []
        with self.server.errors(f"collecting corrections from {self.name!r}", self.name):
            dataset = self._dataset(client, create=False)
            for record in dataset.records(with_suggestions=False, with_responses=True):
                answer = record.fields["answer"]
                for user_id, values in submitted(record).items():
                    text = str(values.get(CORRECTION) or "").strip()
                    if not text or text == answer.strip():
                        continue
                    found.append(
                        Correction(
                            answer_id=str(record.id),
                            question=record.fields["question"],
                            answer=answer,
                            correction=text,
                            reviewer=username(client, user_id, known),
                            model_version=record.metadata["model_version"],
                        )
                    )
        return sorted(found, key=lambda c: (c.answer_id, c.reviewer))
