"""What a crawl remembers about a source so that the next crawl fetches only what changed.

One ``SourceState`` per (author, source) lives in the raw lake next to the snapshots: the
HTTP validators of every page it fetched (and the links or documents each page gave), a
repository's head commit, a folder's file sizes and modification times, and the snapshot
holding the documents it produced. A state made with other settings, another category or
an older format is ignored, since the same bytes would not give the same documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from twin_lib.domain import Category, RawDocument
from twin_lib.hashing import combined_hash
from twin_lib.settings import CrawlSettings

STATE_FORMAT = 1

PageKind = Literal["article", "feed", "sitemap", "index", "listing"]


class PageState(BaseModel):
    """One fetched URL: its validators and what it gave.

    ``document_ids``: the documents it became; ``links``: the pages it lists (entries of a
    feed, URLs of a sitemap, anchors of an index); ``children``: further discovery files it
    points to (an index page's feeds, a sitemap index's sitemaps).
    """

    kind: PageKind
    final_url: str = Field(default="", description="where redirects led; scope is judged there")
    etag: str | None = None
    last_modified: str | None = None
    document_ids: list[str] = Field(default_factory=list)
    links: list[str] = Field(default_factory=list)
    children: list[str] = Field(default_factory=list)


class FileStamp(BaseModel):
    """A folder file as ``stat`` saw it when it was read, and the document it became."""

    size: int
    mtime_ns: int
    read_at_ns: int = 0
    document_id: str | None = None


class SourceState(BaseModel):
    """Everything needed to tell, without reading it again, whether a source changed."""

    format: int = STATE_FORMAT
    source: str
    fingerprint: str
    snapshot_id: str | None = None
    pages: dict[str, PageState] = Field(default_factory=dict)
    head: str | None = None
    files: dict[str, FileStamp] = Field(default_factory=dict)
    document_ids: list[str] = Field(default_factory=list)
    failures: list[tuple[str, str]] = Field(
        default_factory=list,
        description="(URL, reason) of the items refused last time, reported again on reuse",
    )


# Settings that change how politely or how patiently pages are fetched, not what they give.
_POLITENESS = frozenset(
    {
        "user_agent",
        "connect_timeout_s",
        "read_timeout_s",
        "fetch_deadline_s",
        "retries",
        "retry_backoff_s",
        "max_retry_after_s",
        "rate_limit_per_host_s",
        "max_crawl_delay_s",
        "git_timeout_s",
        "conditional_fetching",
    }
)


def state_fingerprint(settings: CrawlSettings, category: Category | None) -> str:
    """Settings and forced category a state was made with: a change makes it unusable."""
    content = settings.model_dump_json(exclude=set(_POLITENESS))
    return combined_hash([f"{STATE_FORMAT}", content, str(category)])


@dataclass(frozen=True)
class PreviousCrawl:
    """A source's state from the last crawl and the documents it may hand back unchanged."""

    state: SourceState
    documents: Mapping[str, RawDocument] = field(default_factory=dict)

    def reusable(self, document_ids: list[str]) -> list[RawDocument] | None:
        """The previous documents with these ids, or None if any is gone (then fetch again)."""
        found = [self.documents.get(document_id) for document_id in document_ids]
        if any(document is None for document in found):
            return None
        return [document for document in found if document is not None]
