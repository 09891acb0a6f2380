"""Feedback on served answers over real HTTP: the twin (the tiny offline model, the session
stack) served by uvicorn in this process with the OpenAI routes, asked with TwinClient and
`twin ask`, rated with `twin rate`; ratings recorded to MinIO beside the answers, pushed to
the session's real Argilla, corrected by an annotator, collected, and built into a
preference dataset whose pair leads back to the answer id."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import argilla as rg
import httpx
import pyarrow.parquet as pq
import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from tests.support.argilla import add_reviewer, submit
from tests.support.isolated import free_port
from tests.support.serving_data import ServedSetup
from twin_lib.cli import app
from twin_lib.datasets.feedback import answer_source
from twin_lib.promotion.feedback import NO_ANSWER
from twin_lib.registry.store import ModelRegistry
from twin_lib.serving.client import TwinClient, TwinClientError
from twin_lib.serving.predictor import TwinModel
from twin_lib.serving.recorder import AnswerRecord, AnswerRecorder
from twin_lib.serving.server import mount
from twin_lib.settings import DatasetSettings, ResponderSettings, TwinSettings, to_env
from twin_lib.steps.datasets import build_preference_dataset, download_dataset
from twin_lib.steps.feedback import push_feedback, read_ratings
from twin_lib.storage import ObjectStore

pytestmark = pytest.mark.integration

MAX_TOKENS = 12


@dataclass
class Served:
    url: str
    model: TwinModel
    settings: TwinSettings

    def flush(self) -> None:
        """What the recorders' timers would do (they wait a minute here)."""
        assert self.model.recorder is not None and self.model.ratings is not None
        self.model.recorder.flush()
        self.model.ratings.flush()

    def twin(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, list(args), env=to_env(self.settings))
        return result.exit_code, result.output


@pytest.fixture(scope="module")
def served(served_setup: ServedSetup) -> Iterator[Served]:
    """Answers and ratings under prefixes of their own, written only when flushed."""
    settings = served_setup.settings.model_copy(deep=True)
    run = uuid.uuid4().hex[:8]
    settings.serving = settings.serving.model_copy(
        update={
            "record_answers": True,
            "answers_prefix": f"answers-{run}",
            "feedback_prefix": f"feedback-{run}",
            "record_flush_s": 60,
            "record_batch_size": 1000,
            "record_max_pending": 3,
            "feedback_max_comment_chars": 50,
            "default_max_tokens": MAX_TOKENS,
        }
    )
    model = TwinModel(settings)
    model.load()
    web = FastAPI()
    mount(web, model)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield Served(f"http://127.0.0.1:{port}", model, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        model.stop()


def _ask(served: Served, question: str) -> str:
    with TwinClient(served.url) as client:
        answer = client.ask(question, max_tokens=MAX_TOKENS)
    assert answer.id
    return answer.id


def _recorded(served: Served, prefix: str) -> list[dict[str, object]]:
    store, bucket = ObjectStore(served.settings.minio), served.settings.minio.datasets_bucket
    return [
        json.loads(line)
        for info in store.list(bucket, f"{prefix}/")
        for line in store.get_bytes(bucket, info.key).splitlines()
    ]


def test_an_unknown_answer_id_gets_a_clear_404(served: Served) -> None:
    with TwinClient(served.url) as client, pytest.raises(TwinClientError) as refused:
        client.rate("no-such-answer", "up")
    assert refused.value.status == 404
    assert "no answer 'no-such-answer' was given by" in refused.value.message
    code, output = served.twin("rate", "no-such-answer", "down", "--url", served.url)
    assert code == 1 and "HTTP 404" in output


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"rating": "sideways"}, 422, "rating"),
        ({"rating": "down", "comment": "x" * 51}, 422, "serving.feedback_max_comment_chars"),
        ({"rating": "down", "delete": True}, 422, "delete"),
        ({"rating": 1}, 422, "rating"),
    ],
    ids=["not-a-thumb", "comment-too-long", "unknown-field", "number"],
)
def test_bad_ratings_are_refused_and_never_lose_the_answer(
    served: Served, body: dict[str, object], status: int, says: str
) -> None:
    question = f"What does the author think about kites? ({status} {says})"
    answer_id = _ask(served, question)
    response = httpx.post(
        f"{served.url}/openai/v1/feedback", json={"answer_id": answer_id, **body}, timeout=30
    )
    assert response.status_code == status, response.text
    assert says in response.json()["error"]["message"]
    # The answer is still there to rate, and recorded in full when the batch is written.
    with TwinClient(served.url) as client:
        assert client.rate(answer_id, "up").answer_id == answer_id
    served.flush()
    answers = {a["id"]: a for a in _recorded(served, served.settings.serving.answers_prefix)}
    assert answers[answer_id]["question"] == question
    # Rated before its answer was written, the rating joins it by id, as one answer.
    (rating,) = [r for r in read_ratings(served.settings) if r.answer_id == answer_id]
    assert rating.rating == "up" and rating.answer.model_dump(mode="json") == answers[answer_id]


def test_a_rating_keeps_its_answer_when_the_answer_never_reaches_storage(served: Served) -> None:
    """Three answers held at most (record_max_pending): the rated answer is pushed out of
    the queue before any flush, yet the rating still holds it, joinable by its id."""
    code, output = served.twin(
        "ask", "Why does the author fly kites in winter?", "--url", served.url
    )
    assert code == 0, output
    found = re.search(r"answer (\S+) from", output)
    assert found, output
    rated = found.group(1)
    code, output = served.twin("rate", rated, "down", "--comment", "too vague", "--url", served.url)
    assert code == 0, output
    assert f"rated answer {rated} down" in output
    for number in range(3):
        _ask(served, f"Another question, number {number}?")
    served.flush()
    assert rated not in {a["id"] for a in _recorded(served, served.settings.serving.answers_prefix)}
    (rating,) = [r for r in read_ratings(served.settings) if r.answer_id == rated]
    assert rating.answer.question == "Why does the author fly kites in winter?"
    assert (rating.rating, rating.comment) == ("down", "too vague")


def test_a_rating_while_the_recorded_answers_are_unreachable_is_a_503_not_a_crash(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An id this process does not hold is looked up in MinIO; here MinIO's address is a
    port where nothing listens."""
    assert served.model.recorder is not None
    gone = served.settings.minio.model_copy(update={"endpoint": f"127.0.0.1:{free_port()}"})
    monkeypatch.setattr(served.model.recorder, "_store", ObjectStore(gone, attempts=1))
    with TwinClient(served.url) as client, pytest.raises(TwinClientError) as refused:
        client.rate("answered-elsewhere", "up")
    assert refused.value.status == 503
    assert "check that MinIO is reachable" in refused.value.message


def test_a_rating_of_an_answer_recorded_by_an_earlier_server_finds_it_in_storage(
    served: Served,
) -> None:
    answer_id = _ask(served, "What did the author write about gardens?")
    served.flush()
    fresh = AnswerRecorder(
        ObjectStore(served.settings.minio),
        served.settings.minio.datasets_bucket,
        served.model.served,
        served.settings.serving,
    )
    assert fresh.recent(answer_id) is None
    found = fresh.find(answer_id)
    assert isinstance(found, AnswerRecord) and found.id == answer_id
    assert fresh.find("never-given") is None


def test_feedback_round_trip_from_a_rating_to_a_preference_pair(
    served: Served, served_setup: ServedSetup, argilla_stack: TwinSettings, tmp_path: Path
) -> None:
    settings = served.settings.model_copy(
        update={
            "argilla": argilla_stack.argilla.model_copy(
                update={"feedback_dataset": f"feedback-{uuid.uuid4().hex[:8]}"}
            )
        }
    )
    served = Served(served.url, served.model, settings)
    question = "What does the author say about kites and wind?"
    # Sampled: greedy decoding makes the untrained tiny model write only newlines, and a
    # whitespace answer makes a pair the dataset suite quarantines (an empty rejected turn).
    reply = httpx.post(
        f"{served.url}/openai/v1/chat/completions",
        json={
            "model": served.settings.serving.served_name,
            "messages": [{"role": "user", "content": question}],
            "max_tokens": MAX_TOKENS,
            "temperature": 1.0,
            "seed": 7,
        },
        timeout=60,
    ).json()
    answer_id = reply["answer_id"]
    answer = served.model.recorder.recent(answer_id) if served.model.recorder else None
    assert answer is not None and answer.answer.strip(), "a sampled answer has words"
    code, output = served.twin(
        "rate", answer_id, "down", "--comment", "not the author's voice", "--url", served.url
    )
    assert code == 0, output
    blank = _ask(served, question)  # greedy: only newlines, a field Argilla would refuse empty
    with TwinClient(served.url) as client:
        client.rate(blank, "down", comment="says nothing")
    served.flush()

    pushed = push_feedback(settings)
    assert (pushed.answers, pushed.added) >= (1, 1)
    assert push_feedback(settings).added == 0, "pushing again adds nothing"
    argilla = settings.argilla
    client = rg.Argilla(api_url=argilla.url, api_key=argilla.api_key.get_secret_value())
    dataset = client.datasets(name=argilla.feedback_dataset, workspace=argilla.workspace)
    assert dataset is not None
    records = {r.id: r for r in dataset.records(with_suggestions=True)}
    assert records[blank].fields["answer"] == NO_ANSWER
    record = records[answer_id]
    assert record.fields["answer"] == answer.answer
    assert "not the author's voice" in record.fields["feedback"]
    correction = "Kites need a steady wind, the author wrote, and patience more than string."
    reviewer = add_reviewer(argilla_stack, "reviewer-cy")
    submit(argilla.url, reviewer, str(record._server_id), {"correction": correction})

    code, output = served.twin("feedback", "collect")
    assert code == 0, output
    key = output.split("TWIN_DATASETS__FEEDBACK_PAIRS_KEY=", 1)[1].split()[0]
    assert "1 correction(s) of 1 answer(s)" in output

    registry = ModelRegistry(settings.minio, settings.registry)
    model = registry.get(served_setup.model.name, served_setup.model.version)
    source = model.dataset_snapshots["instruction"]
    # the tiny model repeats newlines when greedy; seeded sampling gives it words
    responder = ResponderSettings(max_new_tokens=12, batch_size=4, do_sample=True, seed=3)
    plain = build_preference_dataset(
        source,
        minio=settings.minio,
        datasets=DatasetSettings(responder=responder),
        base_model=served_setup.base_model,
        output_dir=tmp_path / "plain",
    )
    with_feedback = build_preference_dataset(
        source,
        minio=settings.minio,
        datasets=DatasetSettings(responder=responder, feedback_pairs_key=key),
        base_model=served_setup.base_model,
        output_dir=tmp_path / "feedback",
    )
    assert with_feedback.snapshot_id != plain.snapshot_id
    files = download_dataset(settings.minio, "preference", with_feedback.snapshot_id, tmp_path)
    train = pq.read_table(str(files["train"])).to_pylist()
    (pair,) = [row for row in train if row["document_id"] == answer_source(answer_id)]
    assert pair["chosen"][0]["content"] == correction
    assert pair["rejected"][0]["content"] == answer.answer
    assert pair["prompt"][-1]["content"] == question
    assert pair["chunk_ids"] == answer.chunk_ids
    before = pq.read_table(str(Path(plain.local_files["train"]))).to_pylist()
    assert [r for r in train if r["generator"] != "feedback"] == before
    manifest = json.loads(
        Path(with_feedback.local_files["train"]).with_name("manifest.json").read_text()
    )
    assert answer_source(answer_id) in manifest["source_urls"]
