"""Articles from any URL (Medium, Substack, plain blogs); RSS/Atom feeds expand to articles."""

from __future__ import annotations

import logging

import feedparser

from twin_lib.crawl.context import CrawlContext, CrawlFailure, CrawlOutcome
from twin_lib.crawl.errors import CrawlError
from twin_lib.crawl.extraction import NoMainTextError, decode_html, extract_main_text
from twin_lib.crawl.fetcher import FetchedPage
from twin_lib.domain import Category, RawDocument

logger = logging.getLogger(__name__)

_FEED_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/xml",
        "text/xml",
        "application/rdf+xml",
    }
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain"})


def is_feed(page: FetchedPage) -> bool:
    """Feeds are recognised by media type or by their root element, since many are mislabelled."""
    if page.content_type in _FEED_TYPES:
        return True
    head = page.body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith(b"<?xml") and (b"<rss" in head or b"<feed" in head)


def crawl_url(url: str, context: CrawlContext) -> CrawlOutcome:
    """Fetch a URL; an article yields one document, a feed one per entry."""
    page = context.fetcher.fetch(url)
    if is_feed(page):
        return _crawl_feed(url, page, context)
    return CrawlOutcome(documents=[article_from_page(page, origin=url, context=context)])


def article_from_page(page: FetchedPage, *, origin: str, context: CrawlContext) -> RawDocument:
    """Turn a fetched HTML page into a raw article, refusing what is not readable text."""
    if page.looks_binary():
        raise CrawlError(page.url, f"binary content served as {page.content_type}; not an article")
    if page.content_type not in _HTML_TYPES:
        raise CrawlError(page.url, f"unsupported content type {page.content_type}")
    try:
        extracted = extract_main_text(decode_html(page.body, page.charset), url=page.url)
    except NoMainTextError as exc:
        raise CrawlError(page.url, exc.reason) from exc
    return RawDocument.create(
        text=extracted.text,
        title=extracted.title,
        author=context.author,
        source_url=page.url,
        origin=origin,
        category=context.category or Category.ARTICLE,
        crawled_at=context.crawled_at,
    )


def _crawl_feed(feed_url: str, page: FetchedPage, context: CrawlContext) -> CrawlOutcome:
    feed = feedparser.parse(page.body)
    links = [entry.get("link") for entry in feed.entries if entry.get("link")]
    limit = context.settings.max_feed_entries
    if len(links) > limit:
        logger.warning("feed %s has %d entries; crawling the first %d", feed_url, len(links), limit)
    outcome = CrawlOutcome()
    if not links:
        raise CrawlError(feed_url, "feed has no entries with links")
    for link in links[:limit]:
        try:
            article_page = context.fetcher.fetch(link)
            outcome.documents.append(
                article_from_page(article_page, origin=feed_url, context=context)
            )
        except CrawlError as exc:
            outcome.failures.append(CrawlFailure(feed_url, link, exc.reason))
    logger.info(
        "feed %s: %d articles, %d failed", feed_url, len(outcome.documents), len(outcome.failures)
    )
    return outcome
