"""What every crawler receives and returns, so the crawlers stay plain functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from twin_lib.crawl.fetcher import PoliteFetcher
from twin_lib.domain import Category, RawDocument
from twin_lib.settings import CrawlSettings


@dataclass(frozen=True)
class CrawlContext:
    """One crawl run: whose writing it is, when it ran, the limits and the shared fetcher."""

    author: str
    crawled_at: datetime
    settings: CrawlSettings
    fetcher: PoliteFetcher
    category: Category | None = None


@dataclass(frozen=True)
class CrawlFailure:
    """A source (or one item inside it) that yielded nothing, and why."""

    origin: str
    source_url: str
    reason: str


@dataclass
class CrawlOutcome:
    """Documents found in one source, plus the items that failed inside it."""

    documents: list[RawDocument] = field(default_factory=list)
    failures: list[CrawlFailure] = field(default_factory=list)
