"""What every crawler receives and returns, so the crawlers stay plain functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from twin_lib.crawl.fetcher import PoliteFetcher
from twin_lib.crawl.state import PreviousCrawl, SourceState, state_fingerprint
from twin_lib.domain import Category, RawDocument
from twin_lib.settings import CrawlSettings


@dataclass(frozen=True)
class CrawlContext:
    """One crawl run: whose writing it is, when it ran, the limits and the shared fetcher.

    ``previous`` is this source's state from the last crawl (None on a first crawl, or with
    conditional fetching off): what it lists as unchanged is handed back, not read again.
    """

    author: str
    crawled_at: datetime
    settings: CrawlSettings
    fetcher: PoliteFetcher
    category: Category | None = None
    previous: PreviousCrawl | None = None

    def new_state(self, source: str) -> SourceState:
        return SourceState(
            source=source, fingerprint=state_fingerprint(self.settings, self.category)
        )


@dataclass(frozen=True)
class CrawlFailure:
    """A source (or one item inside it) that yielded nothing, and why."""

    origin: str
    source_url: str
    reason: str


@dataclass
class Expansion:
    """How one address became pages: the method that worked and what it left out, and why.

    ``found`` counts the distinct pages the method listed; each was taken, left out (with
    a reason: out of scope, excluded, robots.txt, over a limit, a listing) or failed.
    ``tried`` notes the methods that came first and found nothing.
    """

    method: str
    found: int = 0
    taken: int = 0
    left_out: list[tuple[str, str]] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)


@dataclass
class CrawlOutcome:
    """Documents found in one source, plus the items that failed inside it.

    ``reused`` counts documents handed back from the previous crawl without reading their
    content again (HTTP 304, same head commit, same file size and time); ``state`` is
    what the next crawl of this source compares against.
    """

    documents: list[RawDocument] = field(default_factory=list)
    failures: list[CrawlFailure] = field(default_factory=list)
    expansion: Expansion | None = None
    state: SourceState | None = None
    reused: int = 0
