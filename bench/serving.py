"""Serving benchmark: what the REST server costs on top of the twin itself, in one run.

On a private MinIO + Weaviate on loopback, a small labelled corpus goes through the feature
steps and the tiny offline base model is registered and approved as the twin (the serving
tests' setup). The same questions are then answered four ways:

- in-process: ``Twin.answer`` of a twin built in this process, at concurrency 1 and 16;
- over REST: the OpenAI chat route of the model server `twin serve up` starts (the predictor
  the cluster runs), at concurrency 1 and 16. REST p50 minus in-process p50 is the overhead
  of HTTP, parsing, recording and the event loop (target <= 5 ms), and no request may fail;
- plain ``model.generate`` on exactly the prompts the twin builds (same retrieved passages,
  same chat template, same weights and precision, as many new tokens as the server wrote):
  tokens/s through the server against it (target >= 0.9);
- retrieval alone (clean, embed, hybrid search, rerank): p50/p95.

Decoding is greedy, so both paths write the same tokens for a question. Requests and time
are bounded; the model server and the stack are stopped by their PIDs at the end. Figures
mean something only on an idle machine: the load average is printed next to them.

    python -m bench.serving              # 32 requests per measurement, 64-token answers
    python -m bench.serving --quick      # 4 requests, 8 tokens: checks the script
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pydantic import BaseModel

from tests.support.isolated import private_stack
from tests.support.serving_data import build_served_setup
from twin_lib.domain.chat import ChatMessage
from twin_lib.generation.chat_model import render_chat
from twin_lib.serving.client import TwinClient, TwinClientError
from twin_lib.serving.contracts import GenerationParams, ServedModel
from twin_lib.serving.generators import TransformersGenerator
from twin_lib.serving.prompt import build_prompt
from twin_lib.serving.twin import Twin, build_twin
from twin_lib.settings import BaseModelRecipe, TwinSettings
from twin_lib.stack.model_server import LocalModelServer
from twin_lib.training.base_model import ensure_base_model

CONCURRENCY = (1, 16)


class Latencies(BaseModel):
    """One measurement: per-request seconds, wall time and failures."""

    label: str
    seconds: list[float]
    wall_s: float
    errors: int = 0
    tokens: int = 0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.seconds) * 1000 if self.seconds else float("nan")

    @property
    def p95_ms(self) -> float:
        if len(self.seconds) < 2:
            return self.p50_ms
        return statistics.quantiles(self.seconds, n=20, method="inclusive")[-1] * 1000

    @property
    def per_s(self) -> float:
        return len(self.seconds) / self.wall_s if self.wall_s else 0.0

    def line(self) -> str:
        return (
            f"{self.label:<28} p50 {self.p50_ms:8.1f} ms   p95 {self.p95_ms:8.1f} ms   "
            f"{self.per_s:6.2f} req/s   errors {self.errors}"
        )


class Budget:
    """Stops issuing work once the run's time is spent; what ran is still reported."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> bool:
        return time.monotonic() < self.deadline


def measure(
    label: str,
    call: Callable[[str], int],
    questions: Sequence[str],
    *,
    concurrency: int,
    budget: Budget,
) -> Latencies:
    """``call`` once per question from ``concurrency`` threads; it returns tokens written."""
    seconds: list[float] = []
    tokens = errors = 0

    def one(question: str) -> tuple[float, int] | None:
        if not budget.left():
            return None
        started = time.perf_counter()
        try:
            written = call(question)
        except (TwinClientError, TimeoutError, RuntimeError) as error:
            logging.warning("%s failed: %s", label, error)
            return (-1.0, 0)
        return time.perf_counter() - started, written

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for result in pool.map(one, questions):
            if result is None:
                continue
            if result[0] < 0:
                errors += 1
            else:
                seconds.append(result[0])
                tokens += result[1]
    return Latencies(
        label=label,
        seconds=seconds,
        wall_s=time.perf_counter() - started,
        errors=errors,
        tokens=tokens,
    )


def plain_generate(twin: Twin, question: str, new_tokens: int) -> float:
    """Seconds ``model.generate`` takes for the prompt the twin builds for ``question``."""
    import torch

    generator = twin.generator
    assert isinstance(generator, TransformersGenerator), "the benchmark serves the local model"
    conversation = [ChatMessage(role="user", content=question)]
    prompt = build_prompt(
        twin.model.system_prompt,
        twin.retriever.retrieve(question),
        conversation,
        max_context_chars=twin.serving.retrieval.max_context_chars,
    )
    text = render_chat(generator.tokenizer, prompt.messages)
    inputs = generator.tokenizer(text, return_tensors="pt", add_special_tokens=False)
    inputs = inputs.to(generator.device)
    started = time.perf_counter()
    with torch.inference_mode():
        generator.model.generate(
            **inputs,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=generator.tokenizer.pad_token_id,
        )
    return time.perf_counter() - started


def in_process(
    twin: Twin, questions: Sequence[str], params: GenerationParams, budget: Budget
) -> list[Latencies]:
    """``Twin.answer`` at each concurrency, then retrieval alone."""

    def answer(question: str) -> int:
        return twin.answer([ChatMessage(role="user", content=question)], params).completion_tokens

    def retrieve(question: str) -> int:
        twin.retriever.retrieve(question)
        return 0

    answer(questions[0])  # warm-up: the first embedding and generation are slow
    results = [
        measure(f"in-process, concurrency {n}", answer, questions, concurrency=n, budget=budget)
        for n in CONCURRENCY
    ]
    return [*results, measure("retrieval only", retrieve, questions, concurrency=1, budget=budget)]


def over_rest(
    settings: TwinSettings,
    model: ServedModel,
    questions: Sequence[str],
    max_tokens: int,
    budget: Budget,
) -> tuple[list[Latencies], dict[str, int]]:
    """The chat route of a model server started for the run (stopped by PID after), at each
    concurrency; also the tokens it wrote per question."""
    written: dict[str, int] = {}
    server = LocalModelServer(settings)
    server.up(model)
    try:
        with TwinClient(server.url(), timeout_s=settings.serving.generation_timeout_s) as client:

            def ask(question: str) -> int:
                answer = client.ask(question, max_tokens=max_tokens)
                written[question] = answer.completion_tokens or 0
                return written[question]

            ask(questions[0])
            results = [
                measure(f"REST, concurrency {n}", ask, questions, concurrency=n, budget=budget)
                for n in CONCURRENCY
            ]
    finally:
        server.down()
    return results, written


def plain(twin: Twin, written: dict[str, int], budget: Budget) -> tuple[int, float]:
    """Tokens and seconds of ``model.generate`` writing as many tokens as the server did."""
    tokens, seconds = 0, 0.0
    for question, count in written.items():
        if count and budget.left():
            seconds += plain_generate(twin, question, count)
            tokens += count
    return tokens, seconds


def report(
    results: list[Latencies], plain_tokens: int, plain_s: float, args: argparse.Namespace
) -> None:
    by_label = {r.label: r for r in results}
    rest_1, local_1 = by_label.get("REST, concurrency 1"), by_label.get("in-process, concurrency 1")
    print(f"load average:                {os.getloadavg()[0]:.2f} (figures need an idle machine)")
    print(f"requests per measurement:    {args.requests}, answers up to {args.max_tokens} tokens")
    for result in results:
        print(result.line())
    if rest_1 and local_1:
        print(f"REST overhead p50:           {rest_1.p50_ms - local_1.p50_ms:.1f} ms (target <= 5)")
    errors = sum(r.errors for r in results if r.label.startswith("REST"))
    print(f"REST errors:                 {errors} (target 0)")
    if rest_1 and rest_1.tokens and plain_tokens:
        through_server = rest_1.tokens / sum(rest_1.seconds)
        direct = plain_tokens / plain_s
        print(
            f"tokens/s through the server: {through_server:.1f} against plain model.generate "
            f"{direct:.1f}: ratio {through_server / direct:.3f} (target >= 0.9)"
        )


def run(settings: TwinSettings, root: Path, args: argparse.Namespace) -> None:
    base_model = ensure_base_model(BaseModelRecipe.tiny(), settings.stack.cache_dir)
    setup = build_served_setup(settings, root / "served", base_model)
    served = setup.settings.model_copy(deep=True)
    served.stack.state_dir = root / "model-server"
    served.serving.record_answers = not args.no_recording
    labelled = [question for question, _ in setup.questions]
    questions = [labelled[i % len(labelled)] for i in range(args.requests)]
    budget = Budget(args.max_seconds)
    twin = build_twin(served, setup.model)
    try:
        local = in_process(twin, questions, GenerationParams(max_tokens=args.max_tokens), budget)
        remote, written = over_rest(served, setup.model, questions, args.max_tokens, budget)
        plain_tokens, plain_s = plain(twin, written, budget)
    finally:
        twin.close()
    report([*local, *remote], plain_tokens, plain_s, args)
    if not budget.left():
        print(f"time budget of {args.max_seconds:.0f}s spent: later measurements are partial")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32, help="requests per measurement")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per answer")
    parser.add_argument("--max-seconds", type=float, default=900, help="stop issuing after")
    parser.add_argument(
        "--no-recording", action="store_true", help="do not record answers in MinIO"
    )
    parser.add_argument("--quick", action="store_true", help="4 requests, 8 tokens")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.max_tokens = 4, 8
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with private_stack(root / "stack") as settings:
            run(settings, root, args)


if __name__ == "__main__":
    main()
