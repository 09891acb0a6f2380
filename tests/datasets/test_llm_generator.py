"""Generator (a) through the real ``openai`` client against a scripted stand-in for a hosted
LLM API on loopback (tests/support/openai_server.py): no model that writes JSON runs here."""

from __future__ import annotations

import time

import pytest

from tests.datasets.conftest import chunk
from tests.support.openai_server import PLAIN_ANSWER, instruction_for, scripted_openai_server
from twin_lib.datasets.llm import ReplyError, llm_examples, parse_reply
from twin_lib.domain.chat import ChatMessage
from twin_lib.generation.endpoint import ChatEndpoint, EndpointError
from twin_lib.generation.responder import EndpointResponder
from twin_lib.settings import OpenAIEndpointSettings, ResponderSettings

PASSAGES = [
    "Rivers carve valleys slowly, and patience is the lesson they teach every walker.",
    "Lakes hold the sky in their water; a still morning doubles every mountain around.",
    "MALFORMED passage that makes the scripted API reply with broken JSON text.",
    "Bridges are promises in stone that two banks of a river will keep speaking.",
    "Fog lifts from the marsh at dawn and herons stand like grey question marks.",
    "SKIPPED passage that the scripted API leaves out of an otherwise valid reply.",
    "Rain on a tin roof is the oldest music, and everybody knows its rhythm by heart.",
]


def _settings(base_url: str, **overrides) -> OpenAIEndpointSettings:
    return OpenAIEndpointSettings(
        base_url=base_url, model="scripted", max_concurrency=3, max_backoff_s=5, **overrides
    )


def test_llm_generator_parses_quarantines_retries_and_counts_tokens():
    chunks = [chunk(text, document=f"doc-{i // 2}", index=i % 2) for i, text in enumerate(PASSAGES)]
    with scripted_openai_server() as (base_url, script):
        started = time.monotonic()
        result = llm_examples(
            chunks,
            author="Ada",
            system_prompt="You are the twin of {author}.",
            endpoint=ChatEndpoint(_settings(base_url)),
            batch_size=2,
        )
        elapsed = time.monotonic() - started
    # 4 batches: [0,1] ok, [2 MALFORMED,3] quarantined whole, [4, 5 SKIPPED] half, [6] ok.
    assert [e.chunk_ids[0] for e in result.examples] == [c.chunk_id for c in chunks[:2]] + [
        chunks[4].chunk_id,
        chunks[6].chunk_id,
    ]
    first = result.examples[0]
    assert [m.role for m in first.messages] == ["system", "user", "assistant"]
    assert first.messages[0].content == "You are the twin of Ada."
    assert first.messages[1].content == instruction_for(PASSAGES[0])
    assert first.messages[2].content == PASSAGES[0]  # the author's words are the answer
    assert first.generator == "llm:scripted"

    failures = {f.chunk_id: f for f in result.failures}
    assert set(failures) == {chunks[2].chunk_id, chunks[3].chunk_id, chunks[5].chunk_id}
    malformed = failures[chunks[2].chunk_id]
    assert "not the requested JSON" in malformed.reason
    assert malformed.raw_reply and malformed.raw_reply.startswith("Sure!")
    assert failures[chunks[3].chunk_id].raw_reply == malformed.raw_reply
    assert failures[chunks[5].chunk_id].reason == "reply has no item for passage 1"

    assert sorted(script.statuses) == sorted([429, 500, 200, 200, 200, 200])
    assert script.malformed_replies == 1
    usage = result.usage
    assert usage.requests == 4
    assert usage.attempts == 6  # one retry after the 429, one after the 500
    assert usage.prompt_tokens == script.prompt_tokens > 0
    assert usage.completion_tokens == script.completion_tokens > 0
    assert elapsed >= script.retry_after_s  # the Retry-After header was honoured


def test_reply_parsing_is_strict():
    assert parse_reply('{"items": [{"index": 0, "instruction": "Why?"}]}', 1) == {0: "Why?"}
    fenced = '```json\n{"items": [{"index": 1, "instruction": "How so?"}]}\n```'
    assert parse_reply(fenced, 2) == {1: "How so?"}
    for bad in (
        '{"items": [{"index": 0, "instruction": "Why?", "answer": "extra"}]}',
        '{"items": [{"index": "0", "instruction": "Why?"}]}',
        '{"items": [{"index": 3, "instruction": "Out of range?"}]}',
        '{"items": [{"index": 0, "instruction": "A?"}, {"index": 0, "instruction": "B?"}]}',
        'Here you go: {"items": []}',
        "",
    ):
        with pytest.raises(ReplyError):
            parse_reply(bad, 2)


def test_endpoint_responder_answers_in_order_after_retries():
    conversations = [
        [ChatMessage(role="system", content="s"), ChatMessage(role="user", content=f"q{i}")]
        for i in range(3)
    ]
    with scripted_openai_server() as (base_url, script):
        script.retry_after_s = 0
        responder = EndpointResponder(
            ResponderSettings(kind="endpoint", endpoint=_settings(base_url))
        )
        answers = responder.respond(conversations)
    assert answers == [PLAIN_ANSWER] * 3
    assert sorted(script.statuses) == [200, 200, 200, 429, 500]


def test_a_request_that_times_out_is_retried():
    with scripted_openai_server() as (base_url, script):
        script.faults = {1: "stall"}
        endpoint = ChatEndpoint(_settings(base_url, timeout_s=0.5))
        completion = endpoint.complete([ChatMessage(role="user", content="hello")])
    assert completion.text == PLAIN_ANSWER
    assert completion.attempts == 2


def test_endpoint_gives_up_with_a_clear_error():
    with scripted_openai_server() as (base_url, _):
        endpoint = ChatEndpoint(_settings(base_url, max_attempts=1))
        with pytest.raises(EndpointError, match="after 1 attempt"):
            endpoint.complete([ChatMessage(role="user", content="hello")])
    with pytest.raises(EndpointError, match="no endpoint configured"):
        ChatEndpoint(OpenAIEndpointSettings())
