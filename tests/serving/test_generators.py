"""The twin's generation backends: the tiny offline model in this process, and an
OpenAI-compatible endpoint (the scripted loopback server, through the real ``openai`` client).

The tiny model decodes greedily into whitespace only (it pre-trained for a few seconds), so
the tests that need varied text sample it with a fixed seed, which is just as reproducible.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from tests.support.openai_server import PLAIN_ANSWER, Script, scripted_openai_server
from twin_lib.domain.chat import ChatMessage
from twin_lib.generation.endpoint import EndpointError
from twin_lib.serving.contracts import Generation, GenerationParams
from twin_lib.serving.generators import (
    EndpointGenerator,
    GeneratorBusyError,
    StopHoldback,
    TransformersGenerator,
    make_generator,
    resolve_device,
    resolve_dtype,
    trim_at_stop,
)
from twin_lib.settings import OpenAIEndpointSettings, ServingSettings

CHAT = [
    ChatMessage(role="system", content="You are the digital twin of Ann."),
    ChatMessage(role="user", content="Tell me about rivers."),
]
SAMPLED = GenerationParams(max_tokens=40, temperature=1.0, seed=7)


@pytest.fixture(scope="module")
def generator(serving_base_model: Path) -> TransformersGenerator:
    return TransformersGenerator(serving_base_model, ServingSettings(generation_timeout_s=60))


def split_stream(items: list[str | Generation]) -> tuple[str, Generation]:
    """The streamed pieces joined, and the final Generation (which must come last, once)."""
    *pieces, last = items
    assert isinstance(last, Generation)
    assert all(isinstance(p, str) for p in pieces)
    return "".join(pieces), last  # type: ignore[arg-type]


def test_greedy_is_deterministic_and_max_tokens_ends_with_length(generator):
    params = GenerationParams(max_tokens=12)
    first = generator.generate(CHAT, params)
    assert generator.generate(CHAT, params) == first
    assert first.completion_tokens == 12
    assert first.finish_reason == "length"
    expected_prompt = generator.tokenizer.apply_chat_template(
        [m.model_dump() for m in CHAT], tokenize=True, add_generation_prompt=True
    )
    assert first.prompt_tokens == len(expected_prompt["input_ids"])


def test_a_seed_reproduces_a_sampled_answer_and_another_seed_does_not(generator):
    first = generator.generate(CHAT, SAMPLED)
    assert generator.generate(CHAT, SAMPLED) == first
    other = generator.generate(CHAT, SAMPLED.model_copy(update={"seed": 8}))
    assert other.text != first.text
    assert first.text.strip(), "sampling should write visible text"


@pytest.mark.parametrize(
    "params", [GenerationParams(max_tokens=20), SAMPLED], ids=["greedy", "sampled"]
)
def test_stream_pieces_add_up_to_the_generated_answer(generator, params):
    whole = generator.generate(CHAT, params)
    text, last = split_stream(list(generator.stream(CHAT, params)))
    assert text == whole.text
    assert last == whole


def test_stop_strings_end_the_answer_before_the_stop_string(generator):
    free = generator.generate(CHAT, SAMPLED)
    stop = free.text[20:23]
    cut = free.text.index(stop)
    params = SAMPLED.model_copy(update={"stop": [stop, "never-written-stop"]})

    stopped = generator.generate(CHAT, params)
    assert stopped.text == free.text[:cut]
    assert stopped.finish_reason == "stop"
    assert stopped.completion_tokens < free.completion_tokens  # decoding ended, not trimmed

    text, last = split_stream(list(generator.stream(CHAT, params)))
    assert text == free.text[:cut]
    assert last == stopped


def test_generation_is_cut_at_the_timeout(serving_base_model, caplog):
    quick = TransformersGenerator(serving_base_model, ServingSettings(generation_timeout_s=0.05))
    started = time.monotonic()
    result = quick.generate(CHAT, GenerationParams(max_tokens=200))
    assert time.monotonic() - started < 5
    assert result.completion_tokens < 200
    assert result.finish_reason == "length"
    assert "cut by the time limit" in caplog.text


def test_a_stream_being_read_holds_the_only_slot(serving_base_model):
    """A second request waits for the slot (here: longer than the timeout, so it is refused)
    and gets it once the stream is closed."""
    one = TransformersGenerator(
        serving_base_model, ServingSettings(generation_timeout_s=0.5, max_concurrent_generations=1)
    )
    stream = one.stream(CHAT, GenerationParams(max_tokens=50))
    assert isinstance(next(stream), str)
    with pytest.raises(GeneratorBusyError, match="max_concurrent_generations"):
        one.generate(CHAT, GenerationParams(max_tokens=1))
    stream.close()
    assert one.generate(CHAT, GenerationParams(max_tokens=1)).completion_tokens == 1


def test_a_reader_that_leaves_stops_the_decoding(generator):
    """250 tokens take seconds on this model; closing after the first piece takes one step."""
    stream = generator.stream(CHAT, GenerationParams(max_tokens=250))
    assert isinstance(next(stream), str)
    started = time.monotonic()
    stream.close()
    assert time.monotonic() - started < 1.0
    assert not [t for t in threading.enumerate() if t.name == "twin-decode"]


def test_concurrent_requests_queue_for_the_model_and_all_finish(generator):
    params = GenerationParams(max_tokens=8)
    expected = generator.generate(CHAT, params)
    results: list[Generation] = []
    threads = [
        threading.Thread(target=lambda: results.append(generator.generate(CHAT, params)))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [expected] * 6


def test_a_model_without_chat_template_is_refused(serving_base_model, tmp_path):
    bare = tmp_path / "no-template"
    shutil.copytree(serving_base_model, bare)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    config_path = bare / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no chat template"):
        TransformersGenerator(bare, ServingSettings())


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA"
)
def test_cuda_without_a_device_is_refused_and_cpu_precision_defaults_to_fp32():
    with pytest.raises(ValueError, match="TWIN_SERVING__DEVICE"):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu"
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("fp32", "cpu") == torch.float32


@pytest.mark.parametrize(
    "pieces",
    [
        ["Hello wor", "ld. STO", "P here"],
        ["Hello world. S", "T", "O", "P", " here"],
        ["Hello world. ST", "OP here"],
        ["Hello world. STOP here"],
        ["Hel", "lo ", "world. ", "END"],
    ],
)
def test_stop_holdback_never_sends_a_stop_string_or_its_start(pieces):
    stops = ["STOP", "END"]
    holdback = StopHoldback(stops)
    sent = [holdback.feed(piece) for piece in pieces] + [holdback.finish()]
    expected, _ = trim_at_stop("".join(pieces), stops)
    assert "".join(sent) == expected == holdback.text
    assert not any(s in "".join(sent) for s in stops)


def test_stop_holdback_releases_a_false_start_once_it_is_clear():
    holdback = StopHoldback(["STOP"])
    assert holdback.feed("a ST") == "a "  # "ST" could become STOP: held back
    assert holdback.feed("ay") == "STay"
    assert holdback.feed(" S") == " "
    assert holdback.finish() == "S"
    assert holdback.text == "a STay S"


def endpoint_settings(base_url: str) -> OpenAIEndpointSettings:
    return OpenAIEndpointSettings(base_url=base_url, model="merged-twin", max_backoff_s=0.2)


def test_endpoint_generator_answers_with_the_servers_usage_and_passes_the_options():
    script = Script(faults={1: "500"})  # one retry, as the other endpoint callers get
    with scripted_openai_server(script) as (base_url, script):
        generator = EndpointGenerator(endpoint_settings(base_url))
        params = GenerationParams(max_tokens=33, temperature=0.3, top_p=0.9, stop=["##"], seed=5)
        result = generator.generate(CHAT, params)
        generator.close()
    assert result == Generation(
        text=PLAIN_ANSWER,
        prompt_tokens=script.prompt_tokens,
        completion_tokens=script.completion_tokens,
        finish_reason="stop",
    )
    sent = script.requests[-1]
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (33, 0.3, 0.9)
    assert (sent["stop"], sent["seed"], sent["model"]) == (["##"], 5, "merged-twin")
    assert sent["messages"] == [m.model_dump() for m in CHAT]
    assert generator.name == "endpoint:merged-twin"


@pytest.mark.parametrize("usage", [True, False], ids=["usage", "no-usage"])
def test_endpoint_generator_streams_the_servers_chunks(usage):
    with scripted_openai_server(Script(faults={}, stream_usage=usage)) as (base_url, script):
        generator = EndpointGenerator(endpoint_settings(base_url))
        items = list(generator.stream(CHAT, GenerationParams(max_tokens=40)))
    text, last = split_stream(items)
    assert text == last.text == PLAIN_ANSWER
    assert len(items) - 1 == len(PLAIN_ANSWER.split())
    assert script.requests[0]["stream"] is True
    if usage:
        assert (last.prompt_tokens, last.completion_tokens) == (
            script.prompt_tokens,
            script.completion_tokens,
        )
    else:  # a server that ignores stream_options: one token per chunk, prompt unknown
        assert (last.prompt_tokens, last.completion_tokens) == (0, len(items) - 1)
    assert last.finish_reason == "stop"


def test_a_stream_cut_by_the_endpoint_is_an_error_not_a_short_answer():
    with scripted_openai_server(Script(faults={1: "break"})) as (base_url, _):
        stream = EndpointGenerator(endpoint_settings(base_url)).stream(
            CHAT, GenerationParams(max_tokens=40)
        )
        assert next(stream) == PLAIN_ANSWER.split()[0]
        with pytest.raises(EndpointError, match="without a finish reason"):
            next(stream)


def test_make_generator_picks_the_configured_backend(serving_base_model):
    assert isinstance(make_generator(ServingSettings(), serving_base_model), TransformersGenerator)
    with pytest.raises(ValueError, match="TWIN_SERVING__ENDPOINT__BASE_URL"):
        make_generator(ServingSettings(generator="endpoint"), serving_base_model)
    with scripted_openai_server() as (base_url, _):
        serving = ServingSettings(generator="endpoint", endpoint=endpoint_settings(base_url))
        assert isinstance(make_generator(serving, serving_base_model), EndpointGenerator)


def test_the_local_backend_needs_no_openai_package():
    """The serving image installs the ``serving`` extra only, which has no ``openai``."""
    script = """
import sys
from pathlib import Path
sys.modules["openai"] = None  # importing it fails, as in the serving image
from twin_lib.generation import chat_model
from twin_lib.serving import twin
from twin_lib.serving.generators import make_generator
from twin_lib.settings import OpenAIEndpointSettings, ServingSettings
endpoint = OpenAIEndpointSettings(base_url="http://127.0.0.1:9/v1")
try:
    make_generator(ServingSettings(generator="endpoint", endpoint=endpoint), Path("."))
except ValueError as error:
    print(error)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "the openai package is missing" in done.stdout
