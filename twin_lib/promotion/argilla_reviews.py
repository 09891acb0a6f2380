"""Human review in Argilla: one versioned dataset per candidate, read back as evidence.

Each sample becomes one record whose id is the sample id, so a repeated or interrupted
push adds only what is missing and never touches responses already given. Reviewers see the
candidate's and the base model's answers as "A" and "B" in an order drawn per record from
``argilla.review_seed`` and the sample id (recorded in hidden metadata), so they cannot
favour the candidate by position; each answer gets a voice and a grounding rating (1-5) and
an approve/reject verdict. A record is complete once ``argilla.min_submitted`` reviewers
have submitted it.

Only submitted responses are evidence. Each becomes one :class:`ReviewResponse` about the
candidate's answer: its verdict, its comment, its voice and grounding ratings and, as the
rating the gate averages, the lower of the two (an answer is only as good as its weaker
side); the base answer's ratings and verdict are kept beside them.

Argilla 2.8 is the last release (upstream is feature-frozen), so it stays behind the
:class:`~twin_lib.promotion.reviews.ReviewBackend` interface; the SDK is imported lazily.
"""

from __future__ import annotations

import logging
import random
import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import BaseModel

from twin_lib.evaluation.grounding import word_overlap
from twin_lib.promotion.reviews import (
    ReviewedRecord,
    ReviewEvidence,
    ReviewRequest,
    ReviewResponse,
    ReviewSample,
    lower_rating,
)
from twin_lib.registry.models import ModelVersion
from twin_lib.settings import ArgillaSettings, TwinSettings

if TYPE_CHECKING:
    import argilla as rg

log = logging.getLogger(__name__)

ARGILLA = "argilla"
POSITIONS = ("a", "b")
APPROVE, REJECT = "approve", "reject"
SUGGESTION_AGENT = "reference-word-overlap"
# Records sent per request: an interrupted push loses at most one batch's worth of work.
BATCH = 50
NO_BASE_ANSWER = "(the base model gave no answer)"

GUIDELINES = """\
You see a question, the sources the twin retrieved for it, and two answers, **A** and **B**.
One is the candidate model's, the other the base model's; which is which is hidden and
changes from record to record. Judge each answer on its own:

- **Voice (1-5)**: does it sound like the author: their vocabulary, sentence rhythm, tone
  and habits? 1 = nothing like them, 5 = could be theirs.
- **Grounding (1-5)**: is every claim supported by the listed sources? 1 = invented or
  contradicted, 5 = everything is in the sources.
- **Verdict**: approve if you would let users see this answer as the author's twin;
  reject if it is wrong, unsafe, off-topic or not in the author's voice.
- **Comment**: optional; say why when you reject.

Pre-filled ratings are automatic suggestions (word overlap with the author's own answer):
change them freely. Submit when done; drafts do not count.
"""


class ArgillaReviewError(ValueError):
    """Argilla cannot do what was asked; the message names the server and what to do."""


class ReviewProgress(BaseModel):
    """Records with enough submitted responses (completed) and the rest (pending)."""

    dataset: str
    total: int
    completed: int
    pending: int


def dataset_name(model: ModelVersion) -> str:
    """One dataset per candidate version, in Argilla's allowed characters."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", f"{model.name}-{model.version}-review").strip("-_")


def candidate_position(seed: int, sample_id: str) -> str:
    """Where the candidate's answer goes (``a`` or ``b``): the same on every push."""
    return random.Random(f"{seed}:{sample_id}").choice(POSITIONS)


def _rating(score: float) -> int:
    return 1 + round(4 * min(max(score, 0.0), 1.0))


class ArgillaReviewBackend:
    """Reviews collected by people in an Argilla server (``settings.argilla``)."""

    name = ARGILLA
    human = True

    def __init__(self, settings: ArgillaSettings, *, batch: int = BATCH) -> None:
        self.settings = settings
        self.batch = batch

    @contextmanager
    def errors(self, doing: str, dataset: str | None = None) -> Iterator[None]:
        """SDK and transport failures as one message naming the server and the remedy."""
        from argilla._exceptions import (
            ArgillaAPIError,
            ArgillaCredentialsError,
            ForbiddenError,
            UnauthorizedError,
        )

        url = self.settings.url
        try:
            yield
        except (ArgillaCredentialsError, UnauthorizedError, ForbiddenError) as error:
            raise ArgillaReviewError(
                f"Argilla at {url} refused the API key while {doing} (revoked, or not an "
                "owner/admin key): set TWIN_ARGILLA__API_KEY to a valid owner key (Argilla UI, "
                "My settings), then re-run; records already sent are kept"
            ) from error
        except (httpx.TransportError, ConnectionError) as error:
            raise ArgillaReviewError(
                f"Argilla at {url} is not reachable while {doing} ({type(error).__name__}): "
                "start it (`twin stack up --with argilla`) or fix TWIN_ARGILLA__URL. Records "
                f"already sent{f' to {dataset}' if dataset else ''} are kept; re-run to finish"
            ) from error
        except ArgillaAPIError as error:
            raise ArgillaReviewError(
                f"Argilla at {url} failed while {doing}: {error}. Check `twin stack logs "
                "argilla` (locally) or the server's log, then re-run; records already sent "
                "are kept"
            ) from error

    def client(self) -> rg.Argilla:
        import argilla as rg

        with self.errors("connecting"):  # the client checks the key before anything is sent
            return rg.Argilla(
                api_url=self.settings.url,
                api_key=self.settings.api_key.get_secret_value(),
                timeout=30,
                retries=1,
            )

    def dataset_settings(self) -> rg.Settings:
        import argilla as rg

        fields: list[Any] = [
            rg.TextField(name="instruction", title="Question", use_markdown=False),
            rg.TextField(name="context", title="Sources", required=False, use_markdown=True),
            rg.TextField(name="answer_a", title="Answer A", use_markdown=False),
            rg.TextField(name="answer_b", title="Answer B", use_markdown=False),
        ]
        questions: list[Any] = []
        for position in POSITIONS:
            label = position.upper()
            questions += [
                rg.RatingQuestion(
                    name=f"voice_{position}",
                    title=f"Voice of answer {label}: does it sound like the author?",
                    values=[1, 2, 3, 4, 5],
                ),
                rg.RatingQuestion(
                    name=f"grounding_{position}",
                    title=f"Grounding of answer {label}: is it supported by the sources?",
                    values=[1, 2, 3, 4, 5],
                ),
                rg.LabelQuestion(
                    name=f"verdict_{position}",
                    title=f"Would you let users see answer {label}?",
                    labels={APPROVE: "Approve", REJECT: "Reject"},
                ),
            ]
        questions.append(rg.TextQuestion(name="comment", title="Comment", required=False))
        hidden = {"visible_for_annotators": False}
        return rg.Settings(
            guidelines=GUIDELINES,
            fields=fields,
            questions=questions,
            metadata=[
                rg.TermsMetadataProperty(
                    name="candidate_position", options=list(POSITIONS), **hidden
                ),
                rg.TermsMetadataProperty(name="model_version", **hidden),
                rg.IntegerMetadataProperty(name="order_seed", **hidden),
            ],
            distribution=rg.TaskDistribution(min_submitted=self.settings.min_submitted),
        )

    def _dataset(self, client: rg.Argilla, model: ModelVersion, *, create: bool) -> rg.Dataset:
        """The candidate's published dataset; with ``create``, made if missing."""
        return self.named_dataset(
            client,
            dataset_name(model),
            self.dataset_settings,
            create=create,
            missing=f"request the review of {model.name} {model.version} first (the llm-twin "
            "pipeline's request-review step)",
        )

    def named_dataset(
        self,
        client: rg.Argilla,
        name: str,
        make_settings: Callable[[], rg.Settings],
        *,
        create: bool,
        missing: str,
    ) -> rg.Dataset:
        """The published dataset ``name``; with ``create``, made (with its workspace) if
        missing, and made again if an interrupted creation left it unpublished and empty;
        without, a missing one is an error whose remedy is ``missing``."""
        import argilla as rg

        where = self.settings.workspace
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "not found" is an answer here
            workspace = client.workspaces(where)
            dataset = client.datasets(name=name, workspace=workspace) if workspace else None
        # The SDK's own test (its creation rollback uses it): published means ready.
        if dataset is not None and dataset._is_published():
            return dataset
        if not create:
            raise ArgillaReviewError(
                f"no dataset {name!r} in workspace {where!r} at {self.settings.url}: {missing}, "
                "or check TWIN_ARGILLA__WORKSPACE"
            )
        if dataset is not None:
            dataset.delete()
        workspace = workspace or rg.Workspace(name=where, client=client).create()
        return rg.Dataset(
            name=name, workspace=workspace, settings=make_settings(), client=client
        ).create()

    def _record(self, model: ModelVersion, sample: ReviewSample) -> rg.Record:
        import argilla as rg

        seed = self.settings.review_seed
        position = candidate_position(seed, sample.sample_id)
        other = "b" if position == "a" else "a"
        answers = {position: sample.answer, other: sample.base_answer or NO_BASE_ANSWER}
        suggestions = []
        if sample.reference:
            for where, text in answers.items():
                score = word_overlap(text, sample.reference) if text != NO_BASE_ANSWER else 0.0
                suggestions.append(
                    rg.Suggestion(
                        question_name=f"voice_{where}",
                        value=_rating(score),
                        score=round(score, 4),
                        agent=SUGGESTION_AGENT,
                    )
                )
        return rg.Record(
            id=sample.sample_id,
            fields={
                "instruction": sample.question,
                "context": "\n".join(f"- {url}" for url in sample.sources) or "(no sources)",
                "answer_a": answers["a"],
                "answer_b": answers["b"],
            },
            metadata={
                "candidate_position": position,
                "model_version": model.version,
                "order_seed": seed,
            },
            suggestions=suggestions,
        )

    def request_review(self, model: ModelVersion, samples: list[ReviewSample]) -> ReviewRequest:
        """Upsert every sample into the candidate's dataset by sample id: repeating it adds
        nothing, and it completes an interrupted push.

        Samples already there are sent again on purpose: a batch that failed while the
        search engine was down can be stored in Argilla's database but not indexed, so it
        looks present yet reviewers never see it; upserting it again indexes it. Responses
        are not part of a record's upsert and are never touched.
        """
        client = self.client()
        name = dataset_name(model)
        with self.errors(f"pushing samples to {name!r}", name):
            dataset = self._dataset(client, model, create=True)
            present = {
                record.id
                for record in dataset.records(with_suggestions=False, with_responses=False)
            }
            missing = [s for s in samples if s.sample_id not in present]
            for start in range(0, len(samples), self.batch):
                batch = samples[start : start + self.batch]
                records = [self._record(model, sample) for sample in batch]
                dataset.records.log(records, batch_size=self.batch)
                log.info(
                    "review records sent",
                    extra={"dataset": name, "sent": start + len(batch), "of": len(samples)},
                )
        log.info(
            "review requested",
            extra={"dataset": name, "added": len(missing), "already_there": len(present)},
        )
        return ReviewRequest(
            backend=self.name,
            model=model.name,
            version=model.version,
            human=True,
            samples=len(samples),
            location=f"{self.settings.url}/dataset/{dataset.id}/annotation-mode",
            note=(
                f"dataset {name!r} in workspace {self.settings.workspace!r}: {len(missing)} "
                f"record(s) added, {len(present)} already there; answers ordered by seed "
                f"{self.settings.review_seed}; {self.settings.min_submitted} submitted "
                "response(s) complete a record"
            ),
        )

    def progress(self, model: ModelVersion) -> ReviewProgress:
        client = self.client()
        name = dataset_name(model)
        with self.errors(f"reading the progress of {name!r}", name):
            figures = self._dataset(client, model, create=False).progress()
        return ReviewProgress(
            dataset=name,
            total=figures["total"],
            completed=figures["completed"],
            pending=figures["pending"],
        )

    def collect(self, model: ModelVersion) -> ReviewEvidence:
        """Every record and its submitted responses about the candidate's answer."""
        client = self.client()
        name = dataset_name(model)
        with self.errors(f"collecting reviews from {name!r}", name):
            dataset = self._dataset(client, model, create=False)
            reviewers: dict[Any, str] = {}
            records = []
            for record in dataset.records(with_suggestions=False, with_responses=True):
                position = record.metadata["candidate_position"]
                records.append(
                    ReviewedRecord(
                        sample_id=record.id,
                        question=record.fields["instruction"],
                        responses=_responses(client, record, position, reviewers),
                    )
                )
            figures = dataset.progress()
        log.info(
            "reviews collected",
            extra={
                "dataset": name,
                "total": figures["total"],
                "completed": figures["completed"],
                "pending": figures["pending"],
            },
        )
        return ReviewEvidence(
            backend=self.name, human=True, model=model.name, version=model.version, records=records
        )


def _responses(
    client: rg.Argilla, record: rg.Record, position: str, reviewers: dict[Any, str]
) -> list[ReviewResponse]:
    """One response per reviewer who submitted the record; drafts and discards are not
    evidence."""
    found = []
    for user_id, values in submitted(record).items():
        other = "b" if position == "a" else "a"
        voice, grounding = _int(values, f"voice_{position}"), _int(values, f"grounding_{position}")
        found.append(
            ReviewResponse(
                reviewer=username(client, user_id, reviewers),
                rating=lower_rating(voice, grounding),
                approve=_verdict(values, position),
                comment=values.get("comment") or None,
                voice=voice,
                grounding=grounding,
                base_voice=_int(values, f"voice_{other}"),
                base_grounding=_int(values, f"grounding_{other}"),
                base_approve=_verdict(values, other),
            )
        )
    return found


def username(client: rg.Argilla, user_id: Any, known: dict[Any, str]) -> str:
    """A reviewer's name, asked of the server once per user."""
    if user_id not in known:
        user = client.users(id=user_id)
        known[user_id] = user.username if user else str(user_id)
    return known[user_id]


def submitted(record: rg.Record) -> dict[Any, dict[str, Any]]:
    """Each reviewer's submitted answers to the record's questions; drafts and discards are
    not evidence."""
    answers: dict[Any, dict[str, Any]] = defaultdict(dict)
    for response in record.responses:
        if response.status == "submitted":
            answers[response.user_id][response.question_name] = response.value
    return answers


def _int(values: dict[str, Any], question: str) -> int | None:
    value = values.get(question)
    return None if value is None else int(value)


def _verdict(values: dict[str, Any], position: str) -> bool | None:
    verdict = values.get(f"verdict_{position}")
    return None if verdict is None else verdict == APPROVE


def argilla_backend(settings: TwinSettings) -> ArgillaReviewBackend:
    return ArgillaReviewBackend(settings.argilla)
