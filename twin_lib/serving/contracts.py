"""What the serving parts hand each other: answers, their sources, and the two seams.

Retrieval and generation sit behind small protocols so the RAG logic is the same whichever
backend generates (transformers in-process, or an OpenAI-compatible upstream such as vLLM),
and the HTTP layer only ever sees a :class:`TwinAnswer` or a stream of :class:`AnswerDelta`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from twin_lib.domain.chat import ChatMessage

FinishReason = Literal["stop", "length"]


class GenerationParams(BaseModel):
    """Decoding options of one request (already checked against the serving limits)."""

    max_tokens: int = Field(ge=1)
    temperature: float = Field(default=0.0, ge=0, description="0: greedy decoding")
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None


class RetrievedChunk(BaseModel):
    """A chunk of the author's writing found for a question, with its provenance."""

    chunk_id: str = Field(description="the Weaviate object id")
    document_id: str
    content: str
    title: str = ""
    source_url: str
    content_hash: str
    score: float = Field(description="the reranker's score (higher is closer)")


class Source(BaseModel):
    """What a client sees of a chunk an answer drew on."""

    chunk_id: str
    url: str
    title: str
    score: float

    @classmethod
    def of(cls, chunk: RetrievedChunk) -> Source:
        return cls(
            chunk_id=chunk.chunk_id, url=chunk.source_url, title=chunk.title, score=chunk.score
        )


class Generation(BaseModel):
    """A generator's whole answer and its token counts."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason


def utc_now() -> datetime:
    return datetime.now(UTC)


class TwinAnswer(BaseModel):
    """One answer of the twin: every answer has an id, so it can be rated and fed back."""

    id: str
    model: str = Field(description="the served name")
    model_version: str = Field(description="registry name/version, e.g. twin/v3")
    question: str = Field(description="the user's last turn, as received")
    text: str
    sources: list[Source]
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason
    latency_ms: float
    created: datetime = Field(default_factory=utc_now)


class AnswerDelta(BaseModel):
    """One step of a streamed answer: text pieces, then a last event carrying the answer."""

    text: str = ""
    answer: TwinAnswer | None = Field(default=None, description="set on the last event only")


class ServedModel(BaseModel):
    """A registry version resolved for serving: where its weights are and whose twin it is.

    The author, collection and feature version come from the model's dataset lineage, so the
    twin retrieves exactly the chunks its training data was made from, cleaned and embedded
    the same way; the system prompt is the one its training examples carried.
    """

    name: str
    version: str
    status: str
    author: str
    collection: str
    feature_version: str
    system_prompt: str
    model_dir: Path = Field(description="merged weights, tokenizer and chat template")
    merged_uri: str

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"


class Retriever(Protocol):
    """Finds the author's chunks for a question (cleaned and embedded like the chunks)."""

    def retrieve(self, question: str) -> list[RetrievedChunk]: ...


class Generator(Protocol):
    """Writes the assistant's turn for a chat; the prompt is rendered by the chat template."""

    @property
    def name(self) -> str: ...

    def generate(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Generation: ...

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Iterator[str | Generation]:
        """Text pieces as they are decoded, then the whole :class:`Generation` last."""
        ...
