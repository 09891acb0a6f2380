"""The predictor over real HTTP: one ``python -m twin_lib.serving`` process for this module,
on the session stack with the labelled corpus and the tiny offline model, asked with the
official ``openai`` client and with KServe's v1/v2 bodies, and stopped by PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from tests.support.isolated import free_port
from tests.support.listeners import listening, outside_address
from tests.support.serving_data import ServedSetup
from twin_lib.serving.predictor import TwinModel
from twin_lib.serving.server import build_parser, grpc_enabled, mount, serving_settings
from twin_lib.settings import TwinSettings, to_env
from twin_lib.storage import ObjectStore, VectorStore

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MAX_TOKENS_LIMIT = 32
MAX_PROMPT_CHARS = 2000
MAX_MESSAGES = 6


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    settings: TwinSettings
    log: Path
    questions: list[tuple[str, str]]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def name(self) -> str:
        return self.settings.serving.served_name

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/openai/v1", api_key="unused", max_retries=0)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120)


def _log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"model server exited with {process.returncode}:\n{_log_tail(log)}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"model server not ready within {timeout_s} s:\n{_log_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return process.returncode


@pytest.fixture(scope="module")
def server(served_setup: ServedSetup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = served_setup.settings.model_copy(deep=True)
    serving = settings.serving
    serving.http_port = free_port()
    serving.default_max_tokens = 8
    serving.max_tokens_limit = MAX_TOKENS_LIMIT
    serving.max_prompt_chars = MAX_PROMPT_CHARS
    serving.max_messages = MAX_MESSAGES
    serving.record_flush_s = 3600  # recorded on SIGTERM: the last test checks the flush
    serving.record_batch_size = 1000
    serving.answers_prefix = f"answers-{uuid.uuid4().hex[:8]}"
    log = tmp_path_factory.mktemp("http-server") / "server.log"
    env = {
        **os.environ,
        **to_env(settings),
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    url = f"http://127.0.0.1:{serving.http_port}"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "twin_lib.serving"],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(url, process, log, timeout_s=300)
        yield Server(url, process, settings, log, served_setup.questions)
    finally:
        _stop(process)


# --- the OpenAI-compatible routes, with the official client ----------------------------------


def test_chat_completion_answers_with_sources_and_an_id(server: Server) -> None:
    question, url = server.questions[0]
    reply = server.openai().chat.completions.create(
        model=server.name, messages=[{"role": "user", "content": question}], max_tokens=6
    )
    assert reply.object == "chat.completion"
    assert reply.model == server.name
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert isinstance(choice.message.content, str)
    assert choice.finish_reason in {"stop", "length"}
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 6
    extras = reply.model_extra or {}
    assert extras["answer_id"]
    assert extras["model_version"] == f"{server.settings.serving.model_name}/" + str(
        server.settings.serving.version
    )
    sources = extras["sources"]
    assert sources and all({"chunk_id", "url", "title", "score"} <= set(s) for s in sources)
    assert url in {s["url"] for s in sources}


def test_chat_completion_streams_pieces_then_a_last_chunk_with_the_extras(server: Server) -> None:
    question, url = server.questions[1]
    stream = server.openai().chat.completions.create(
        model=server.name,
        messages=[{"role": "user", "content": question}],
        max_tokens=6,
        stream=True,
    )
    chunks = list(stream)
    assert len(chunks) >= 2
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    last = chunks[-1]
    assert last.choices[0].finish_reason in {"stop", "length"}
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    extras = last.model_extra or {}
    assert extras["answer_id"]
    assert url in {s["url"] for s in extras["sources"]}
    assert last.usage is not None and 0 < last.usage.completion_tokens <= 6


def test_text_completion_takes_the_prompt_as_the_question(server: Server) -> None:
    question, url = server.questions[2]
    reply = server.openai().completions.create(model=server.name, prompt=question, max_tokens=5)
    assert reply.object == "text_completion"
    assert isinstance(reply.choices[0].text, str)
    assert url in {s["url"] for s in (reply.model_extra or {})["sources"]}


def test_models_lists_the_served_name(server: Server) -> None:
    models = server.openai().models.list()
    assert [m.id for m in models.data] == [server.name]
    assert models.data[0].owned_by == server.settings.serving.model_name + "/" + str(
        server.settings.serving.version
    )


# --- KServe v1 and v2 ------------------------------------------------------------------------


def test_v1_predict(server: Server) -> None:
    question, url = server.questions[3]
    with server.http() as http:
        response = http.post(
            f"/v1/models/{server.name}:predict",
            json={"instances": [{"question": question, "max_tokens": 4}]},
        )
    assert response.status_code == 200, response.text
    [prediction] = response.json()["predictions"]
    assert prediction["answer_id"] and isinstance(prediction["text"], str)
    assert url in {s["url"] for s in prediction["sources"]}
    assert prediction["model_version"].endswith("/" + str(server.settings.serving.version))


def test_v2_infer(server: Server) -> None:
    question, url = server.questions[4]
    body = {
        "inputs": [{"name": "question", "shape": [1], "datatype": "BYTES", "data": [question]}],
        "parameters": {"max_tokens": 4},
    }
    with server.http() as http:
        response = http.post(f"/v2/models/{server.name}/infer", json=body)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert set(outputs) == {"answer", "sources", "answer_id"}
    assert all(o["datatype"] == "BYTES" and o["shape"] == [1] for o in outputs.values())
    sources = json.loads(outputs["sources"]["data"][0])
    assert url in {s["url"] for s in sources}


# --- bad input: 4xx with a message, and the server keeps serving -----------------------------

CHAT = "/openai/v1/chat/completions"


def _chat(**fields: object) -> dict[str, object]:
    return {"model": "twin", "messages": [{"role": "user", "content": "Hi?"}], **fields}


BAD_REQUESTS = [
    pytest.param(CHAT, b'{"model": "twin", "messages": [', 400, "json", id="malformed-json"),
    pytest.param(CHAT, _chat(max_tokens="8"), 422, "max_tokens", id="max-tokens-as-string"),
    pytest.param(CHAT, _chat(messages="hello"), 422, "messages", id="messages-not-a-list"),
    pytest.param(
        CHAT, {"messages": [{"role": "user", "content": "Hi"}]}, 422, "model", id="no-model"
    ),
    pytest.param(
        CHAT, _chat(messages=[{"role": "user", "content": "  "}]), 400, "empty", id="empty-question"
    ),
    pytest.param(CHAT, _chat(messages=[]), 422, "messages", id="no-messages"),
    pytest.param(
        CHAT,
        _chat(messages=[{"role": "user", "content": "x" * (MAX_PROMPT_CHARS + 1)}]),
        413,
        "serving.max_prompt_chars",
        id="oversized-prompt",
    ),
    pytest.param(
        CHAT,
        _chat(messages=[{"role": "user", "content": "Hi?"}] * (MAX_MESSAGES + 1)),
        413,
        "serving.max_messages",
        id="too-many-messages",
    ),
    pytest.param(
        CHAT,
        _chat(max_tokens=MAX_TOKENS_LIMIT + 1),
        400,
        "serving.max_tokens_limit",
        id="too-many-tokens",
    ),
    pytest.param(CHAT, _chat(model="gpt-4"), 404, "gpt-4", id="unknown-model"),
    pytest.param(
        CHAT,
        _chat(messages=[{"role": "system", "content": "Be brief."}]),
        400,
        "role 'user'",
        id="no-user-turn",
    ),
    pytest.param(
        CHAT,
        _chat(messages=[{"role": "wizard", "content": "Hi"}]),
        422,
        "messages.0.role",
        id="unknown-role",
    ),
    pytest.param(CHAT, _chat(n=3), 400, "n must be 1", id="several-choices"),
    pytest.param(
        "/openai/v1/completions",
        {"model": "twin", "prompt": ""},
        400,
        "empty",
        id="completion-empty-prompt",
    ),
    pytest.param(
        "/openai/v1/completions",
        {"model": "twin", "prompt": "x" * (MAX_PROMPT_CHARS + 1)},
        413,
        "serving.max_prompt_chars",
        id="completion-oversized-prompt",
    ),
]


@pytest.mark.parametrize(("path", "body", "status", "needle"), BAD_REQUESTS)
def test_bad_openai_requests_get_an_openai_error(
    server: Server, path: str, body: dict[str, object] | bytes, status: int, needle: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with server.http() as http:
        response = http.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert needle.lower() in error["message"].lower()


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        pytest.param("/v1/models/twin:predict", {"instances": "what?"}, "instances", id="v1-str"),
        pytest.param(
            "/v1/models/twin:predict", {"instances": [{"question": ""}]}, "empty", id="v1-empty"
        ),
        pytest.param(
            "/v1/models/twin:predict",
            {"instances": [{"question": "Hi?", "max_tokens": MAX_TOKENS_LIMIT + 1}]},
            "serving.max_tokens_limit",
            id="v1-too-many-tokens",
        ),
        pytest.param(
            "/v2/models/twin/infer",
            {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["Hi?"]}]},
            "question",
            id="v2-no-question-input",
        ),
        pytest.param(
            "/v2/models/twin/infer",
            {"inputs": [{"name": "question", "shape": [1], "datatype": "INT32", "data": [1]}]},
            "BYTES",
            id="v2-wrong-datatype",
        ),
    ],
)
def test_bad_kserve_requests_get_a_4xx_with_a_message(
    server: Server, path: str, body: dict[str, object], needle: str
) -> None:
    with server.http() as http:
        response = http.post(path, json=body)
    assert 400 <= response.status_code < 500, response.text
    assert needle.lower() in response.json()["error"].lower()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_size_limit_is_refused_while_it_is_read(
    server: Server, chunked: bool
) -> None:
    """20 MB of JSON, declared up front or streamed without a length: 413 either way."""
    body = json.dumps(_chat(padding="x" * 20_000_000)).encode()
    content: bytes | Iterator[bytes] = (
        iter([body[i : i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    )
    with server.http() as http:
        response = http.post(CHAT, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "body_too_large"
    assert "serving.max_prompt_chars" in error["message"]


def test_the_openai_client_raises_its_typed_errors(server: Server) -> None:
    client = server.openai()
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.BadRequestError, match="max_tokens_limit"):
        client.chat.completions.create(
            model=server.name,
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=MAX_TOKENS_LIMIT + 1,
        )


def test_sixteen_concurrent_requests_all_succeed_and_the_server_stays_healthy(
    server: Server,
) -> None:
    """Half streamed, half not; generation queues on the worker pool while the event loop
    keeps answering health checks promptly."""

    def ask(n: int) -> str:
        question = server.questions[n % len(server.questions)][0]
        body = _chat(model=server.name, messages=[{"role": "user", "content": question}])
        with server.http() as http:
            response = http.post(CHAT, json=body | {"max_tokens": 3, "stream": n % 2 == 1})
        assert response.status_code == 200, response.text
        return response.text

    with ThreadPoolExecutor(16) as pool, server.http() as http:
        answers = [pool.submit(ask, n) for n in range(16)]
        health_s = []
        while not all(a.done() for a in answers):
            started = time.monotonic()
            assert http.get("/v2/health/ready").status_code == 200
            health_s.append(time.monotonic() - started)
            time.sleep(0.1)
        bodies = [a.result() for a in answers]
    assert all('"answer_id"' in body for body in bodies)
    assert all(body.endswith("data: [DONE]\n\n") for body in bodies[1::2])
    assert len(health_s) >= 3 and max(health_s) < 2.0, health_s
    with server.http() as http:
        assert http.get(f"/v2/models/{server.name}/ready").status_code == 200


def test_metrics_show_the_twin_counters(server: Server) -> None:
    server.openai().chat.completions.create(
        model=server.name, messages=[{"role": "user", "content": "Hi?"}], max_tokens=2
    )
    with server.http() as http:
        http.post(CHAT, content=b"{")
        text = http.get("/metrics").text
    assert 'twin_requests_total{route="/openai/v1/chat/completions",status="200"}' in text
    assert 'twin_requests_total{route="/openai/v1/chat/completions",status="400"}' in text
    assert 'twin_errors_total{kind="BadRequestError"}' in text
    for name in (
        "twin_retrieval_seconds_count",
        "twin_generation_seconds_count",
        "twin_tokens_generated_total",
    ):
        value = next(line for line in text.splitlines() if line.startswith(name))
        assert float(value.split()[-1]) > 0, value


def test_the_rest_server_listens_on_loopback_only(server: Server) -> None:
    port = server.settings.serving.http_port
    listeners = listening([server.pid])
    assert ("127.0.0.1", port) in listeners
    assert {address for address, _ in listeners} == {"127.0.0.1"}, listeners
    outside = outside_address()
    if outside != "127.0.0.1":
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{outside}:{port}/v2/health/ready", timeout=3)


# --- in this process: the timeout and readiness paths ---------------------------------------


@pytest.fixture(scope="module")
def loaded(served_setup: ServedSetup) -> Iterator[TwinModel]:
    settings = served_setup.settings.model_copy(deep=True)
    settings.serving.record_answers = False
    settings.serving.default_max_tokens = 4
    model = TwinModel(settings)
    model.load()
    yield model
    model.stop()


def _app(model: TwinModel) -> TestClient:
    app = FastAPI()
    mount(app, model)
    return TestClient(app)


def test_a_generation_over_the_timeout_gets_504_and_the_next_request_is_served(
    loaded: TwinModel,
) -> None:
    client, body = _app(loaded), _chat(model=loaded.name)
    loaded.serving.generation_timeout_s = 0.001
    try:
        for stream in (False, True):
            response = client.post(CHAT, json=body | {"stream": stream})
            assert response.status_code == 504, response.text
            error = response.json()["error"]
            assert error["type"] == "timeout_error"
            assert "serving.generation_timeout_s" in error["message"]
    finally:
        loaded.serving.generation_timeout_s = 120
    assert client.post(CHAT, json=body).status_code == 200


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_failing_retrieval_answers_500_at_once_not_a_timeout(
    served_setup: ServedSetup, stream: bool
) -> None:
    """Weaviate goes away under the loaded twin (its client now points at a port where
    nothing listens): retrieval fails for real, and a streamed request must report it at
    once rather than wait out the generation timeout."""
    settings = served_setup.settings.model_copy(deep=True)
    settings.serving.record_answers = False
    settings.serving.generation_timeout_s = 30
    model = TwinModel(settings)
    model.load()
    try:
        assert model.twin is not None
        retriever = model.twin.retriever.inner  # type: ignore[attr-defined]
        retriever.close()
        gone = settings.weaviate.model_copy(
            update={"http_port": free_port(), "grpc_port": free_port()}
        )
        retriever.store = VectorStore(gone)
        started = time.monotonic()
        response = _app(model).post(CHAT, json=_chat() | {"stream": stream})
        assert response.status_code == 500, response.text
        assert response.json()["error"]["type"] == "server_error"
        assert time.monotonic() - started < 20
    finally:
        model.stop()


def test_a_model_that_is_not_loaded_answers_503(served_setup: ServedSetup) -> None:
    client = _app(TwinModel(served_setup.settings))
    response = client.post(CHAT, json=_chat())
    assert response.status_code == 503, response.text
    assert response.json()["error"]["type"] == "service_unavailable_error"


# --- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "enabled"),
    [
        ([], False),
        (["--grpc_port", "9001"], True),
        (["--enable_grpc", "true"], True),
        (["--enable_grpc", "false", "--grpc_port", "9001"], False),
    ],
)
def test_grpc_is_off_unless_asked_for(argv: list[str], enabled: bool) -> None:
    assert grpc_enabled(build_parser().parse_args(argv)) is enabled


def test_the_runtime_flags_win_over_the_settings() -> None:
    parser, settings = build_parser(), TwinSettings(_env_file=None)
    args = parser.parse_args(["--model_name", "isvc", "--http_port", "8080", "--model_dir", "/m"])
    serving = serving_settings(settings, args).serving
    assert (serving.served_name, serving.http_port) == ("isvc", 8080)
    assert args.model_dir == Path("/m")
    kept = serving_settings(settings, parser.parse_args([])).serving
    assert (kept.served_name, kept.http_port) == (
        settings.serving.served_name,
        settings.serving.http_port,
    )
    with pytest.raises(ValidationError, match="http_port"):
        serving_settings(settings, parser.parse_args(["--http_port", "70000"]))


def test_a_version_that_may_not_be_served_exits_with_one_line(served_setup: ServedSetup) -> None:
    settings = served_setup.settings.model_copy(deep=True)
    settings.serving.version = "v9999"
    settings.serving.http_port = free_port()
    done = subprocess.run(
        [sys.executable, "-m", "twin_lib.serving"],
        cwd=REPO,
        env={**os.environ, **to_env(settings), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("✘ ") and "v9999" in last and "TWIN_SERVING__VERSION" in last, last


# --- last: stopping the server (SIGTERM) flushes the answers it still holds -------------------


def test_sigterm_stops_the_server_and_records_every_answer(server: Server) -> None:
    """Batches of 1000 and an hour between timed flushes: only the stop writes these."""
    client = server.openai()
    question = server.questions[5][0]
    reply = client.chat.completions.create(
        model=server.name, messages=[{"role": "user", "content": question}]
    )
    streamed = list(
        client.chat.completions.create(
            model=server.name,
            messages=[{"role": "user", "content": server.questions[6][0]}],
            stream=True,
        )
    )
    answer_id = (reply.model_extra or {})["answer_id"]
    streamed_id = (streamed[-1].model_extra or {})["answer_id"]
    settings = server.settings
    store, bucket = ObjectStore(settings.minio), settings.minio.datasets_bucket
    prefix = (
        f"{settings.serving.answers_prefix}/{settings.serving.model_name}/"
        f"{settings.serving.version}/"
    )
    assert store.list(bucket, prefix) == [], "nothing is written before a batch or a flush"

    os.kill(server.pid, signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0, _log_tail(server.log)

    records = {
        record["id"]: record
        for info in store.list(bucket, prefix)
        for record in map(json.loads, store.get_bytes(bucket, info.key).splitlines())
    }
    assert {answer_id, streamed_id} <= set(records), f"not all recorded under {prefix}"
    record = records[answer_id]
    assert record["question"] == question
    assert record["answer"] == reply.choices[0].message.content
    assert record["chunk_ids"] == [s["chunk_id"] for s in (reply.model_extra or {})["sources"]]
    assert record["model_version"] == f"{settings.serving.model_name}/{settings.serving.version}"
    assert record["latency_ms"] > 0
    assert records[streamed_id]["question"] == server.questions[6][0]
