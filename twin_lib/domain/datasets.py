"""Records of the instruction (SFT) and preference (DPO) datasets, and their lineage.

Every example keeps the ids of the feature-store chunks it was made from, their document,
raw snapshot and source URL, so a trained model can be traced back to the pages it learned
from: model -> dataset snapshot -> chunk ids -> raw snapshot -> source URLs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from twin_lib.domain.chat import ChatMessage

DatasetKind = Literal["instruction", "preference"]
Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")
OFFLINE_GENERATOR = "offline"


class SourceChunk(BaseModel):
    """One chunk of the author's writing as the feature store holds it."""

    model_config = ConfigDict(frozen=True)

    chunk_id: str = Field(description="the Weaviate object uuid")
    document_id: str
    chunk_index: int
    content: str
    title: str = ""
    author: str
    category: str
    source_url: str
    content_hash: str
    raw_snapshot_id: str = ""
    feature_version: str = Field(default="", description="recipe the chunk was made with")


class _Lineage(BaseModel):
    example_id: str
    document_id: str
    chunk_ids: list[str]
    source_url: str
    raw_snapshot_id: str
    generator: str = Field(description='"offline" or "llm:<model>"')


class InstructionExample(_Lineage):
    """system + user + assistant turns; the assistant turn is the author's own text."""

    messages: list[ChatMessage]

    @property
    def answer(self) -> str:
        return self.messages[-1].content


class PreferenceExample(_Lineage):
    """TRL's conversational preference format: the author's text beats the base model's."""

    prompt: list[ChatMessage]
    chosen: list[ChatMessage]
    rejected: list[ChatMessage]

    @property
    def answer(self) -> str:
        return self.chosen[-1].content


class SplitFile(BaseModel):
    key: str
    sha256: str
    rows: int


class TokenUsage(BaseModel):
    """Tokens an endpoint reported in ``usage``; zero for offline generation."""

    requests: int = 0
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            requests=self.requests + other.requests,
            attempts=self.attempts + other.attempts,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class DatasetManifest(BaseModel):
    """``manifest.json`` of a dataset snapshot, written last: its presence commits the snapshot."""

    snapshot_id: str
    kind: DatasetKind
    author: str
    created: datetime
    generator: str
    counts: dict[str, int]
    quarantined: dict[str, int] = Field(default_factory=dict)
    collection: str
    feature_version: str = Field(
        description="the feature version(s) recorded on the chunks, '+'-joined"
    )
    features_hash: str = Field(
        description="hash of the chunk ids and content hashes the dataset was built from"
    )
    chunk_ids: list[str]
    raw_snapshot_ids: list[str]
    source_urls: list[str]
    parent: str | None = Field(default=None, description="the author's previous snapshot")
    source_snapshot: str | None = Field(
        default=None, description="for a preference dataset, the instruction snapshot it extends"
    )
    content_hash: str
    files: dict[str, SplitFile]
    usage: TokenUsage = Field(default_factory=TokenUsage)
    responder: str | None = Field(default=None, description="who wrote the rejected answers")
    seed: int
    test_fraction: float


class DatasetLineage(BaseModel):
    """What a trained model needs to name its data, down to the source URLs."""

    dataset_snapshot_id: str
    kind: DatasetKind
    collection: str
    feature_version: str
    chunk_ids: list[str]
    raw_snapshot_ids: list[str]
    source_urls: list[str]


class DatasetSummary(BaseModel):
    """What a dataset step returns: enough for a KFP component's outputs and metrics."""

    snapshot_id: str
    kind: DatasetKind
    reused: bool = Field(description="an identical snapshot already existed and was returned")
    generator: str
    counts: dict[str, int]
    quarantined: dict[str, int]
    uris: dict[str, str]
    manifest_uri: str
    local_files: dict[str, str]
    reports: dict[str, str]
    usage: TokenUsage
    metrics: dict[str, float]
