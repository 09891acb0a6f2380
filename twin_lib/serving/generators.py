"""The two generation backends of the twin: a transformers model in this process, or an
OpenAI-compatible server (vLLM, KServe's Hugging Face runtime) serving the merged weights.

Both render the conversation with the chat template saved at training time (locally through
the tokenizer, upstream through the server, which loads the same tokenizer), so the RAG logic
above them is identical. The local backend guards the one model it holds: at most
``serving.max_concurrent_generations`` run at once (a request that waits longer than the
generation timeout for a turn is refused, not queued forever), each is cut at
``serving.generation_timeout_s``, and sampled generations take turns with the process-wide
random generator so that a seed reproduces its answer under concurrency.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twin_lib.domain.chat import ChatMessage
from twin_lib.generation.chat_model import load_chat_model, render_chat
from twin_lib.serving.contracts import FinishReason, Generation, GenerationParams, Generator
from twin_lib.settings import OpenAIEndpointSettings, ServingSettings

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

_SAMPLING_LOCK = threading.Lock()


class GeneratorBusyError(TimeoutError):
    """Every generation slot stayed taken for as long as a generation may last: the request
    timed out waiting for its turn (a ``TimeoutError``, so callers treat it as one)."""


class Slots:
    """At most ``size`` generations at once; a caller waits at most ``wait_s`` for a turn."""

    def __init__(self, size: int, wait_s: float, what: str, setting: str) -> None:
        self._semaphore = threading.BoundedSemaphore(size)
        self.size = size
        self.wait_s = wait_s
        self.what = what
        self.setting = setting

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        if not self._semaphore.acquire(timeout=self.wait_s):
            raise GeneratorBusyError(
                f"{self.what} stayed busy with {self.size} generation(s) for {self.wait_s:g} s; "
                f"retry later, or raise {self.setting} if the hardware has room for more"
            )
        try:
            yield
        finally:
            self._semaphore.release()


def resolve_device(requested: str) -> str:
    """``auto`` is CUDA when present, else the CPU; CUDA asked for without one is refused."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"serving.device is {requested!r} but torch sees no CUDA device; "
            "set TWIN_SERVING__DEVICE=auto or cpu"
        )
    return requested


def resolve_dtype(requested: str, device: str) -> torch.dtype:
    """bf16 on a CUDA device that supports it; fp32 on the CPU unless bf16 is asked for.

    The training chooser decides (and refuses bf16 on hardware without it). On the CPU,
    ``auto`` stays fp32: training used bf16 only as autocast over fp32 weights, and weights
    stored in bf16 would change the greedy answers the platform's evaluation measured.
    """
    import torch

    from twin_lib.training.precision import plan_precision

    on_cuda = device.startswith("cuda")
    if requested == "auto" and not on_cuda:
        return torch.float32
    plan = plan_precision(requested, cuda=None if on_cuda else False)
    return torch.bfloat16 if plan.bf16 else torch.float32


def trim_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string (excluded, as in the OpenAI API); whether one hit."""
    cuts = [index for index in (text.find(s) for s in stop if s) if index >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


class StopHoldback:
    """Streams text without ever sending a stop string, or the start of one.

    A tail that is the start of a stop string is held until the next piece shows whether it
    grows into one (or until the end), so the streamed pieces add up to exactly the text
    :func:`trim_at_stop` gives for the whole answer.
    """

    def __init__(self, stop: Sequence[str]) -> None:
        self.stop = [s for s in stop if s]
        self._text = ""
        self._sent = 0
        self.stopped = False

    @property
    def text(self) -> str:
        return self._text

    def feed(self, piece: str) -> str:
        """The part of the text so far that is safe to send now."""
        if self.stopped:
            return ""
        self._text, self.stopped = trim_at_stop(self._text + piece, self.stop)
        safe = len(self._text) if self.stopped else len(self._text) - self._open_prefix()
        return self._release(safe)

    def finish(self) -> str:
        return self._release(len(self._text))

    def _open_prefix(self) -> int:
        """Length of the longest tail of the text that a stop string begins with."""
        longest = min(max((len(s) for s in self.stop), default=1) - 1, len(self._text))
        for size in range(longest, 0, -1):
            if any(s.startswith(self._text[-size:]) for s in self.stop):
                return size
        return 0

    def _release(self, upto: int) -> str:
        out = self._text[self._sent : upto]
        self._sent = max(self._sent, upto)
        return out


class TransformersGenerator:
    """The merged model in this process, on the serving device and precision."""

    def __init__(self, model_dir: Path, serving: ServingSettings) -> None:
        self.model_dir = model_dir
        self.serving = serving
        self.device = resolve_device(serving.device)
        self.dtype = resolve_dtype(serving.precision, self.device)
        self.tokenizer, self.model = load_chat_model(
            model_dir, dtype=self.dtype, device=self.device
        )
        self.window = int(getattr(self.model.config, "max_position_embeddings", 0) or 0)
        self.slots = Slots(
            serving.max_concurrent_generations,
            serving.generation_timeout_s,
            f"the model {self.name}",
            "serving.max_concurrent_generations",
        )
        self._warned_window = False
        logger.info(
            "generator loaded",
            extra={
                "model_dir": str(model_dir),
                "device": self.device,
                "dtype": str(self.dtype).removeprefix("torch."),
                "window": self.window,
                "slots": serving.max_concurrent_generations,
            },
        )

    @property
    def name(self) -> str:
        return f"local:{self.model_dir.name}"

    def generate(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Generation:
        import torch

        inputs = self._encode(messages, params)
        with self.slots.turn(), self._randomness(params), torch.inference_mode():
            started = time.monotonic()
            output = self.model.generate(**inputs, **self._options(params))
            elapsed_s = time.monotonic() - started
        new_tokens = output[0, inputs["input_ids"].shape[1] :].tolist()
        text, hit_stop = trim_at_stop(
            self.tokenizer.decode(new_tokens, skip_special_tokens=True), params.stop
        )
        return self._result(text, hit_stop, inputs, new_tokens, params, elapsed_s)

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Iterator[str | Generation]:
        """Decoding runs in a thread feeding a ``TextIteratorStreamer``; a consumer that stops
        early (a client that hung up) stops the decoding at the next token."""
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        inputs = self._encode(messages, params)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancelled = threading.Event()
        options = {
            **self._options(params),
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_Cancelled(cancelled)]),
        }
        holdback = StopHoldback(params.stop)
        with self.slots.turn(), self._randomness(params):
            started = time.monotonic()
            run = _Decoding(self.model, inputs, options, streamer)
            run.start()
            try:
                for piece in streamer:
                    if safe := holdback.feed(piece):
                        yield safe
                if tail := holdback.finish():
                    yield tail
            finally:
                cancelled.set()
                run.join()
        if run.error is not None:
            raise run.error
        new_tokens = run.output[0, inputs["input_ids"].shape[1] :].tolist()
        elapsed_s = time.monotonic() - started
        yield self._result(holdback.text, holdback.stopped, inputs, new_tokens, params, elapsed_s)

    def _encode(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Any:
        prompt = render_chat(self.tokenizer, messages)
        inputs = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        length = inputs["input_ids"].shape[1]
        if self.window and length + params.max_tokens > self.window and not self._warned_window:
            self._warned_window = True  # once: the cause is a setting, not this one request
            logger.warning(
                "prompt and answer exceed the model's context window; the model sees text "
                "beyond what it was trained on. Lower serving.retrieval.max_context_chars "
                "or max_tokens, or serve a model with a longer window",
                extra={
                    "prompt_tokens": length,
                    "max_tokens": params.max_tokens,
                    "window": self.window,
                },
            )
        return inputs.to(self.device)

    def _options(self, params: GenerationParams) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "max_time": self.serving.generation_timeout_s,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if params.temperature > 0:
            options |= {
                "do_sample": True,
                "temperature": params.temperature,
                "top_p": params.top_p,
                "top_k": 0,  # OpenAI semantics: no top-k cut, whatever the model config says
            }
        else:
            options |= {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if params.stop:
            options |= {"stop_strings": list(params.stop), "tokenizer": self.tokenizer}
        return options

    @contextlib.contextmanager
    def _randomness(self, params: GenerationParams) -> Iterator[None]:
        """Sampling draws from torch's process-wide generator: one sampled generation at a
        time, seeded first when the request names a seed. Greedy decoding draws nothing."""
        if params.temperature == 0:
            yield
            return
        import torch

        with _SAMPLING_LOCK:
            if params.seed is not None:
                torch.manual_seed(params.seed)
            yield

    def _result(
        self,
        text: str,
        hit_stop: bool,
        inputs: Any,
        new_tokens: list[int],
        params: GenerationParams,
        elapsed_s: float,
    ) -> Generation:
        """``text`` is already cut at the stop string ``hit_stop`` says was written."""
        ended = bool(new_tokens) and new_tokens[-1] in self._end_ids()
        finish: FinishReason = "stop" if hit_stop or ended else "length"
        if finish == "length" and len(new_tokens) < params.max_tokens:  # max_time stopped it
            logger.warning(
                "generation cut by the time limit",
                extra={
                    "timeout_s": self.serving.generation_timeout_s,
                    "completion_tokens": len(new_tokens),
                    "elapsed_s": round(elapsed_s, 2),
                },
            )
        return Generation(
            text=text,
            prompt_tokens=int(inputs["input_ids"].shape[1]),
            completion_tokens=len(new_tokens),
            finish_reason=finish,
        )

    def _end_ids(self) -> set[int]:
        configured = self.model.generation_config.eos_token_id
        ids = configured if isinstance(configured, list) else [configured]
        return {i for i in [*ids, self.tokenizer.eos_token_id] if i is not None}


class _Cancelled:
    """A stopping criterion that ends decoding once the stream's consumer has gone."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **_: Any) -> torch.Tensor:
        import torch

        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


class _Decoding(threading.Thread):
    """``model.generate`` in a thread; a failure ends the stream and is raised by the reader."""

    def __init__(self, model: Any, inputs: Any, options: dict[str, Any], streamer: Any) -> None:
        super().__init__(name="twin-decode", daemon=True)
        self.model = model
        self.inputs = inputs
        self.options = options
        self.streamer = streamer
        self.output: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        import torch

        try:
            with torch.inference_mode():
                self.output = self.model.generate(**self.inputs, **self.options)
        except BaseException as error:  # handed to the reading thread, which raises it
            self.error = error
            self.streamer.end()


class EndpointGenerator:
    """An OpenAI-compatible server; the same retry policy as every other endpoint call."""

    def __init__(self, endpoint: OpenAIEndpointSettings) -> None:
        if not endpoint.base_url:
            raise ValueError(
                "serving.generator is 'endpoint' but no endpoint is configured: set "
                "TWIN_SERVING__ENDPOINT__BASE_URL (e.g. http://vllm:8000/v1) and "
                "TWIN_SERVING__ENDPOINT__MODEL, or use TWIN_SERVING__GENERATOR=local"
            )
        try:
            from twin_lib.generation.endpoint import ChatEndpoint  # imports openai
        except ImportError as error:
            raise ValueError(
                f"serving.generator is 'endpoint' but the openai package is missing ({error}); "
                "install it in the serving image, or use TWIN_SERVING__GENERATOR=local"
            ) from error
        self.endpoint = ChatEndpoint(endpoint)
        self.slots = Slots(
            endpoint.max_concurrency,
            endpoint.timeout_s,
            self.endpoint.label,
            "serving.endpoint.max_concurrency",
        )

    @property
    def name(self) -> str:
        return f"endpoint:{self.endpoint.settings.model}"

    def generate(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Generation:
        with self.slots.turn():
            completion = self.endpoint.complete(messages, **self._request(params))
        return Generation(
            text=completion.text,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            finish_reason=_finish(completion.finish_reason),
        )

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Iterator[str | Generation]:
        with self.slots.turn():
            for item in self.endpoint.stream(messages, **self._request(params)):
                if isinstance(item, str):
                    yield item
                    continue
                yield Generation(
                    text=item.text,
                    prompt_tokens=item.prompt_tokens,
                    completion_tokens=item.completion_tokens,
                    finish_reason=_finish(item.finish_reason),
                )

    def close(self) -> None:
        self.endpoint.client.close()

    @staticmethod
    def _request(params: GenerationParams) -> dict[str, Any]:
        options: dict[str, object] = {"top_p": params.top_p}
        if params.stop:
            options["stop"] = list(params.stop)
        if params.seed is not None:
            options["seed"] = params.seed
        return {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "options": options,
        }


def _finish(reason: str | None) -> FinishReason:
    """Upstream reasons beyond the two the twin reports (content filter, tool calls) end it."""
    return "length" if reason == "length" else "stop"


def make_generator(serving: ServingSettings, model_dir: Path) -> Generator:
    """The backend ``serving.generator`` names: ``local`` loads ``model_dir`` here."""
    if serving.generator == "endpoint":
        return EndpointGenerator(serving.endpoint)
    return TransformersGenerator(model_dir, serving)
