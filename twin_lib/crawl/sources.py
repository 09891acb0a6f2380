"""Choosing a crawler for each source, running them all, and collecting what failed.

The crawler table is a plain dict from kind to (matches, crawl, complete_listing) in
priority order: the first kind whose predicate accepts a source crawls it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel

from twin_lib.crawl.context import CrawlContext, CrawlFailure, CrawlOutcome, Expansion
from twin_lib.crawl.errors import CrawlError
from twin_lib.crawl.fetcher import PoliteFetcher
from twin_lib.crawl.folders import crawl_folder
from twin_lib.crawl.git_repos import crawl_repository, is_git_source
from twin_lib.crawl.linkedin import crawl_linkedin_export, is_linkedin_export
from twin_lib.crawl.sites import crawl_url
from twin_lib.crawl.state import PreviousCrawl, SourceState, state_fingerprint
from twin_lib.domain import Category, RawDocument
from twin_lib.settings import CrawlSettings

logger = logging.getLogger(__name__)


class Source(BaseModel):
    """A link or path to crawl, optionally forcing the category of what it yields."""

    url: str
    category: Category | None = None


@dataclass(frozen=True)
class CrawlerSpec:
    """How to recognise and crawl one kind of source.

    ``complete_listing`` says whether a successful crawl sees everything the source holds
    (a folder, a repository, an export archive). Only then may a document missing from the
    crawl be treated as deleted; web pages and feeds (a rolling window) never qualify.
    """

    matches: Callable[[str], bool]
    crawl: Callable[[str, CrawlContext], CrawlOutcome]
    complete_listing: bool = False


def _is_local_folder(source: str) -> bool:
    return Path(source).expanduser().is_dir()


def _is_web_url(source: str) -> bool:
    return urlsplit(source).scheme in ("http", "https")


CRAWLERS: dict[str, CrawlerSpec] = {
    "linkedin-export": CrawlerSpec(
        is_linkedin_export, crawl_linkedin_export, complete_listing=True
    ),
    "git": CrawlerSpec(is_git_source, crawl_repository, complete_listing=True),
    "folder": CrawlerSpec(_is_local_folder, crawl_folder, complete_listing=True),
    "web": CrawlerSpec(_is_web_url, crawl_url, complete_listing=False),
}


def crawler_kind(source: str) -> str:
    """Name of the crawler that handles a source; a clear error when none does."""
    for kind, spec in CRAWLERS.items():
        if spec.matches(source):
            return kind
    raise CrawlError(
        source,
        "no crawler for this source; pass an http(s) URL, a git URL, a local folder or a "
        "LinkedIn export archive",
    )


@dataclass
class CrawlReport:
    """All documents of a run, which origins were crawled, and every failure with its reason.

    ``crawled_origins`` lists sources that were reached; only for those may documents that
    disappeared be treated as removed (a source that was down must not erase its documents).
    ``complete_origins`` is the subset whose crawl was a complete listing of an
    authoritative source (see ``CrawlerSpec.complete_listing``): the only origins whose
    missing documents may be deleted. ``expansions`` says how each web source became pages,
    ``states`` what the next crawl of each source compares against, and ``reused`` how
    many documents came back from the previous crawl unread.
    """

    documents: list[RawDocument] = field(default_factory=list)
    crawled_origins: list[str] = field(default_factory=list)
    complete_origins: list[str] = field(default_factory=list)
    failures: list[CrawlFailure] = field(default_factory=list)
    expansions: dict[str, Expansion] = field(default_factory=dict)
    states: dict[str, SourceState] = field(default_factory=dict)
    reused: int = 0


def usable_previous(
    source: Source, previous: PreviousCrawl | None, settings: CrawlSettings
) -> PreviousCrawl | None:
    """The last crawl's state if refresh is on and it was made the way this crawl reads."""
    if previous is None or not settings.conditional_fetching:
        return None
    if previous.state.fingerprint != state_fingerprint(settings, source.category):
        logger.info("%s: crawl settings changed since the last crawl; reading it all", source.url)
        return None
    return previous


def crawl_sources(
    sources: Sequence[Source],
    *,
    author: str,
    settings: CrawlSettings,
    transport: httpx.BaseTransport | None = None,
    crawled_at: datetime | None = None,
    previous: Mapping[str, PreviousCrawl] | None = None,
) -> CrawlReport:
    """Crawl every source; one failing source is recorded and does not stop the others.

    Any exception of a crawler, not only ``CrawlError``, becomes that source's failure
    with the exception's type and message; the source is then neither crawled nor complete.
    ``previous`` (by source URL) lets unchanged sources and pages be reused, not re-read.
    """
    if not author.strip():
        raise ValueError("author is empty; pass the name of the person whose writing this is")
    report = CrawlReport()
    started = crawled_at or datetime.now(UTC)
    with PoliteFetcher(settings, transport=transport) as fetcher:
        for position, source in enumerate(sources, start=1):
            context = CrawlContext(
                author=author,
                crawled_at=started,
                settings=settings,
                fetcher=fetcher,
                category=source.category,
                previous=usable_previous(source, (previous or {}).get(source.url), settings),
            )
            try:
                kind = crawler_kind(source.url)
                outcome = CRAWLERS[kind].crawl(source.url, context)
            except CrawlError as exc:
                logger.warning(
                    "[%d/%d] %s failed: %s", position, len(sources), source.url, exc.reason
                )
                report.failures.append(CrawlFailure(source.url, exc.source, exc.reason))
                continue
            except Exception as exc:  # a bug or an unforeseen input must not cost the others
                logger.exception(
                    "[%d/%d] %s failed unexpectedly", position, len(sources), source.url
                )
                reason = f"unexpected {type(exc).__name__}: {exc}"
                report.failures.append(CrawlFailure(source.url, source.url, reason))
                continue
            report.documents.extend(outcome.documents)
            report.failures.extend(outcome.failures)
            report.crawled_origins.append(source.url)
            if CRAWLERS[kind].complete_listing:
                report.complete_origins.append(source.url)
            if outcome.expansion is not None:
                report.expansions[source.url] = outcome.expansion
            if outcome.state is not None:
                report.states[source.url] = outcome.state
            report.reused += outcome.reused
            logger.info(
                "[%d/%d] %s (%s): %d documents, %d unchanged since the last crawl",
                position,
                len(sources),
                source.url,
                kind,
                len(outcome.documents),
                outcome.reused,
            )
    logger.info(
        "crawl done: %d documents (%d unchanged, not read again) from %d/%d sources, %d failures",
        len(report.documents),
        report.reused,
        len(report.crawled_origins),
        len(sources),
        len(report.failures),
    )
    return report
