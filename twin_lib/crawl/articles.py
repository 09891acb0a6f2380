"""One fetched page as an article, and telling a feed from a page."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from twin_lib.crawl.context import CrawlContext
from twin_lib.crawl.errors import CrawlError
from twin_lib.crawl.extraction import NoMainTextError, decode_html, extract_main_text
from twin_lib.crawl.fetcher import FetchedPage
from twin_lib.crawl.syndication import CANONICAL_URL
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
    canonical = extracted.canonical
    if canonical and urlsplit(canonical).netloc == urlsplit(page.url).netloc:
        canonical = None  # a site's own canonical address is its business, not syndication
    return RawDocument.create(
        text=extracted.text,
        title=extracted.title,
        author=context.author,
        source_url=page.url,
        origin=origin,
        category=context.category or Category.ARTICLE,
        metadata={CANONICAL_URL: canonical} if canonical else None,
        crawled_at=context.crawled_at,
    )
