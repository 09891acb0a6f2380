"""TwinClient against a scripted HTTP server on loopback: parsing, streaming and every way
an exchange can fail. The real twin server is exercised in test_local_serving.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import pytest

from tests.support.isolated import free_port
from tests.support.loopback import serving
from twin_lib.serving.client import ClientAnswer, TwinClient, TwinClientError

SOURCES = [
    {"chunk_id": "c-1", "url": "https://example.org/a", "title": "A", "score": 0.9},
    {"chunk_id": "c-2", "url": "https://example.org/b", "title": "B", "score": 0.4},
]
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "twin",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    "sources": SOURCES,
    "answer_id": "ans-42",
    "model_version": "twin/v3",
}


def chunk(delta: dict, finish: str | None = None, **extra: object) -> dict:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "twin",
            "choices": [choice], **extra}  # fmt: skip


STREAM = [
    chunk({"role": "assistant"}),
    chunk({"content": "Hel"}),
    chunk({"content": "lo."}),
    chunk({}, "length", sources=SOURCES, answer_id="ans-43"),
    {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
]


@dataclass
class Reply:
    """What the scripted server answers on every route."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay_s: float = 0.0
    requests: list[dict] = field(default_factory=list)


def sse(events: list[dict], *, done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(e)}\n\n" for e in events] + (["data: [DONE]\n\n"] if done else [])
    return (": keep-alive comment\n\n" + "".join(lines)).encode()


@contextmanager
def scripted(reply: Reply) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def _answer(self) -> None:
            time.sleep(reply.delay_s)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.end_headers()  # HTTP/1.0: the body ends when the connection closes
            self.wfile.write(reply.body)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            reply.requests.append({"path": self.path, **json.loads(self.rfile.read(length))})
            self._answer()

    with serving(Handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


def test_ask_parses_the_answer_its_sources_and_id():
    reply = Reply(body=json.dumps(COMPLETION).encode())
    with scripted(reply) as url, TwinClient(f"{url}/openai/v1/", model="my-twin") as client:
        answer = client.ask("Who are you?", max_tokens=7)
    assert answer.id == "ans-42" and answer.text == "Hello there."
    assert [s.chunk_id for s in answer.sources] == ["c-1", "c-2"]
    assert answer.sources[0].url == "https://example.org/a" and answer.sources[1].score == 0.4
    assert (answer.model, answer.model_version, answer.finish_reason) == ("twin", "twin/v3", "stop")
    assert (answer.prompt_tokens, answer.completion_tokens) == (12, 3)
    assert answer.latency_ms > 0
    (sent,) = reply.requests
    assert sent["path"] == "/openai/v1/chat/completions"
    assert sent["model"] == "my-twin" and sent["max_tokens"] == 7 and sent["stream"] is False
    assert sent["messages"] == [{"role": "user", "content": "Who are you?"}]


def test_ask_leaves_max_tokens_to_the_server_unless_given():
    reply = Reply(body=json.dumps(COMPLETION).encode())
    with scripted(reply) as url, TwinClient(url) as client:
        client.ask("Who are you?")
    assert "max_tokens" not in reply.requests[0]


def test_ask_stream_yields_pieces_then_the_whole_answer():
    reply = Reply(body=sse(STREAM), content_type="text/event-stream")
    with scripted(reply) as url, TwinClient(url) as client:
        events = list(client.ask_stream("Who are you?", max_tokens=2))
    *pieces, answer = events
    assert pieces == ["Hel", "lo."]
    assert isinstance(answer, ClientAnswer)
    assert (answer.id, answer.text, answer.finish_reason) == ("ans-43", "Hello.", "length")
    assert [s.chunk_id for s in answer.sources] == ["c-1", "c-2"]
    assert (answer.prompt_tokens, answer.completion_tokens) == (5, 2)
    assert reply.requests[0]["stream"] is True


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": {"message": "max_tokens 5000 is over the limit 1024", "code": 400}},
         "max_tokens 5000 is over the limit 1024"),
        (404, {"error": "Model with name nope does not exist."}, "nope does not exist"),
        (422, {"detail": [{"loc": ["body", "messages"], "msg": "Field required"}]},
         "Field required"),
        (503, "upstream overloaded", "upstream overloaded"),
    ],
)  # fmt: skip
def test_a_refusal_carries_the_status_and_the_servers_message(
    status: int, body: object, expected: str
):
    raw = json.dumps(body) if isinstance(body, dict) else body
    with scripted(Reply(status=status, body=raw.encode())) as url, TwinClient(url) as client:
        with pytest.raises(TwinClientError) as refused:
            client.ask("Who are you?")
        with pytest.raises(TwinClientError) as refused_stream:
            list(client.ask_stream("Who are you?"))
    for error in (refused.value, refused_stream.value):
        assert error.status == status
        assert expected in str(error) and f"HTTP {status}" in str(error) and url in str(error)


def test_an_unreachable_server_is_named_with_the_cause_and_the_fix():
    url = f"http://127.0.0.1:{free_port()}"
    with TwinClient(url) as client:
        assert client.ready() is False
        with pytest.raises(TwinClientError) as down:
            client.ask("Who are you?")
    assert down.value.status is None
    assert f"not reachable at {url} (Connection refused)" in str(down.value)
    assert "twin serve up" in str(down.value)


def test_a_slow_server_times_out_with_a_clear_error():
    reply = Reply(body=json.dumps(COMPLETION).encode(), delay_s=1.0)
    with (
        scripted(reply) as url,
        TwinClient(url, timeout_s=0.2) as client,
        pytest.raises(TwinClientError, match="did not answer in time"),
    ):
        client.ask("Who are you?")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (sse(STREAM, done=False), "ended before `data: \\[DONE\\]`"),
        (sse([*STREAM[:2], {"error": {"message": "generation timed out after 120s"}}]),
         "failed mid-answer: generation timed out after 120s"),
        (b"data: {not json\n\n", "event that is not JSON"),
        (sse([]), "streamed no answer"),
    ],
)  # fmt: skip
def test_a_broken_stream_raises_instead_of_returning_a_partial_answer(body: bytes, expected: str):
    reply = Reply(body=body, content_type="text/event-stream")
    with (
        scripted(reply) as url,
        TwinClient(url) as client,
        pytest.raises(TwinClientError, match=expected),
    ):
        list(client.ask_stream("Who are you?"))


@pytest.mark.parametrize(
    "body", [b"<html>proxy error</html>", b'{"choices": []}', b'{"id": "x", "choices": [{}]}']
)
def test_a_reply_that_is_not_a_chat_completion_is_refused(body: bytes):
    with (
        scripted(Reply(body=body)) as url,
        TwinClient(url) as client,
        pytest.raises(TwinClientError, match=r"not a (JSON object|chat completion)"),
    ):
        client.ask("Who are you?")


@pytest.mark.parametrize(("status", "ready"), [(200, True), (503, False)])
def test_ready_follows_the_health_route(status: int, ready: bool):
    reply = Reply(status=status, body=b'{"ready": true}')
    with scripted(reply) as url, TwinClient(url) as client:
        assert client.ready() is ready
