"""A scripted stand-in for a hosted LLM API, speaking OpenAI's chat-completions protocol.

No model that can write JSON runs on these machines, so tests of the LLM generator talk to
this HTTP server on loopback through the real ``openai`` client instead. It answers like a
hosted API would: the first request is refused with 429 and a ``Retry-After`` header, the
second with a 500 (``Script.faults`` changes that, and can stall a request past the
client's timeout), and after that every request gets a completion with ``usage``. Passages
marked ``MALFORMED`` get a reply that is not JSON, passages marked ``SKIPPED`` are left out of
an otherwise valid JSON reply, and a conversation without passages gets a plain answer.
Everything the server sent is recorded for the test to compare with what the client counted,
and every request body for the test to check what the client asked for. A request with
``stream: true`` gets the answer as server-sent events, one word per chunk, usage last when
``stream_options.include_usage`` asks for it; the fault ``break`` cuts such a stream after
its first chunk, as a crashed upstream would.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.support.loopback import serving

_PASSAGE = re.compile(r'<passage index="(\d+)"[^>]*>\n(.*?)\n</passage>', re.DOTALL)
PLAIN_ANSWER = "I would answer that in general terms."


@dataclass
class Script:
    """What the server does to the n-th request (1-based); unlisted requests succeed."""

    faults: dict[int, str] = field(default_factory=lambda: {1: "429", 2: "500"})
    retry_after_s: int = 1
    stall_s: float = 2.0
    statuses: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    malformed_replies: int = 0
    requests: list[dict] = field(default_factory=list)
    stream_usage: bool = True  # False: ignore stream_options, as some servers do
    reply: Callable[[dict], str] | None = None  # the answer text to a request body, if set
    lock: threading.Lock = field(default_factory=threading.Lock)


def instruction_for(passage: str) -> str:
    return f"What do you think about {' '.join(passage.split()[:4])}?"


def _reply_text(user: str) -> str:
    passages = [(int(i), text) for i, text in _PASSAGE.findall(user)]
    if not passages:
        return PLAIN_ANSWER
    if any("MALFORMED" in text for _, text in passages):
        return 'Sure! Here are the instructions: {"items": [{"index": 0, "instruction": '
    items = [
        {"index": i, "instruction": instruction_for(text)}
        for i, text in passages
        if "SKIPPED" not in text
    ]
    return json.dumps({"items": items})


def chat_completion(completion_id: str, model: str, text: str) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` body with one choice that finished normally."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
    }


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _send_events(self, request: dict, text: str, usage: dict, fault: str) -> None:
            """The answer as SSE chunks; the connection closes after the last one."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            head = {
                "id": "chatcmpl-stream",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": request["model"],
            }
            words = text.split(" ")
            events: list[dict] = [
                {**head, "choices": [{"index": 0, "delta": {"content": piece}}]}
                for piece in [words[0], *(f" {w}" for w in words[1:])]
            ]
            events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            if script.stream_usage and (request.get("stream_options") or {}).get("include_usage"):
                events.append({**head, "choices": [], "usage": usage})
            for event in events[:1] if fault == "break" else events:
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
            if fault != "break":
                self.wfile.write(b"data: [DONE]\n\n")

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with script.lock:
                number = len(script.statuses) + 1
                fault = script.faults.get(number, "")
                status = int(fault) if fault.isdigit() else 200
                script.statuses.append(status)
                script.requests.append(request)
            if fault == "stall":  # longer than the client's timeout: it gives up and retries
                time.sleep(script.stall_s)
            if status == 429:
                error = {"error": {"message": "rate limited", "type": "rate_limit"}}
                self._send(429, error, {"Retry-After": str(script.retry_after_s)})
                return
            if status == 500:
                self._send(500, {"error": {"message": "overloaded", "type": "server_error"}})
                return
            user = next(m["content"] for m in request["messages"] if m["role"] == "user")
            text = script.reply(request) if script.reply else _reply_text(user)
            usage = {"prompt_tokens": len(user.split()), "completion_tokens": len(text.split())}
            with script.lock:
                script.prompt_tokens += usage["prompt_tokens"]
                script.completion_tokens += usage["completion_tokens"]
                script.malformed_replies += text.startswith("Sure!")
            if request.get("stream"):
                self._send_events(request, text, usage, fault)
                return
            body = chat_completion(f"chatcmpl-{number}", request["model"], text)
            self._send(200, {**body, "usage": {**usage, "total_tokens": sum(usage.values())}})

    return Handler


@contextmanager
def scripted_openai_server(script: Script | None = None) -> Iterator[tuple[str, Script]]:
    """``(base_url, script)`` of a server on a free loopback port, stopped on exit."""
    script = script or Script()
    with serving(_handler(script)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", script
