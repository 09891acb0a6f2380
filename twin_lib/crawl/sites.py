"""From one web address to the author's writing, fetching again only what changed.

An article's URL is one document; a feed is its entries, a sitemap its pages. A home,
index or profile page stands for the pages under it, found in this order: the profile's
well-known feed, the page's autodiscovered feed, the site's sitemaps, then same-site links
followed to ``max_link_depth``; the first that lists pages in scope is used, and if none
does the page is an article after all. Every page a method lists is taken or left out with
a reason.

Each page fetched before is asked for conditionally; a 304 hands back what the page gave
last time (its documents, or the links it listed) without reading it again.
"""

from __future__ import annotations

import logging
from collections import deque
from urllib.parse import urlsplit

from lxml.html import HtmlElement

from twin_lib.crawl.articles import article_from_page, is_feed
from twin_lib.crawl.context import CrawlContext, CrawlFailure, CrawlOutcome, Expansion
from twin_lib.crawl.discovery import (
    Scope,
    declares_article,
    excluded_reason,
    feed_entry_links,
    feed_links,
    is_listing,
    looks_like_index,
    looks_like_sitemap,
    names_sitemap,
    page_links,
    parse_html,
    parse_sitemap,
    profile_feeds,
    scope_of,
)
from twin_lib.crawl.errors import CrawlError
from twin_lib.crawl.extraction import decode_html
from twin_lib.crawl.fetcher import FetchedPage, Validators
from twin_lib.crawl.state import PageKind, PageState

logger = logging.getLogger(__name__)

_PROGRESS_EVERY = 25  # requests between progress lines: a polite crawl of a site takes minutes


def crawl_url(url: str, context: CrawlContext) -> CrawlOutcome:
    """Crawl a web address: one article, a feed's entries or the writing under an index."""
    return SiteCrawl(url, context).run()


class SiteCrawl:
    """One web source's crawl: pages seen, the state for the next crawl, and the outcome."""

    def __init__(self, source: str, context: CrawlContext) -> None:
        self.source = source
        self.context = context
        self.settings = context.settings
        self.previous = context.previous
        self.state = context.new_state(source)
        self.outcome = CrawlOutcome(state=self.state)
        self.limit = self.settings.max_pages
        self.tried: list[str] = []
        self.requests = 0
        self.outside: set[str] = set()

    def run(self) -> CrawlOutcome:
        discover = self.settings.discover_sites and looks_like_index(self.source)
        if discover and self._profile_feed():
            return self._finish()
        if names_sitemap(self.source):
            self._take_all("sitemap", self._sitemap_pages([self.source], scope=None), scope=None)
            return self._finish()
        result = self._get(self.source)
        if isinstance(result, PageState):
            self._replay(self.source, result)
        elif is_feed(result):
            self.limit = min(self.limit, self.settings.max_feed_entries)
            links = feed_entry_links(result.body)
            self._remember(self.source, result, "feed", links=links)
            if not links:
                raise CrawlError(self.source, "feed has no entries with links")
            self._take_all("feed", links, scope=None)
        elif discover:
            self._expand_index(result)
        else:
            self._take_page(self.source, result)
            self._expansion("page", found=1)
        return self._finish()

    # -- discovery -------------------------------------------------------------------------

    def _profile_feed(self) -> bool:
        for feed in profile_feeds(self.source):
            if self._try_feed(feed, "profile feed", scope_of(self.source, self.settings)):
                return True
        return False

    def _try_feed(self, feed: str, method: str, scope: Scope) -> bool:
        """Take a feed's entries in scope; False (and a note) when it gives none."""
        links = self._discovery_file(feed, "feed")
        if links is None:
            return False
        inside = [link for link in links if scope.why_outside(link) is None]
        if not inside:
            self.tried.append(f"{method} {feed}: no entries under {scope.prefix}")
            return False
        self.limit = min(self.limit, self.settings.max_feed_entries)
        self._take_all(method, links, scope)
        return True

    def _discovery_file(
        self, url: str, kind: PageKind, scope: Scope | None = None
    ) -> list[str] | None:
        """The links a feed or sitemap lists, or None (noted in ``tried``) if unreadable.

        A sitemap's pages outside ``scope`` are counted in a note, not listed one by one: a
        large site's sitemap would otherwise fill the report and the crawl state.
        """
        try:
            result = self._get(url)
        except CrawlError as exc:
            missing = exc.reason.startswith(("HTTP 404", "HTTP 410"))
            self.tried.append(f"{kind} {url}: {'none there' if missing else exc.reason}")
            return None
        if isinstance(result, PageState):
            return result.links
        if kind == "feed" and is_feed(result):
            links = feed_entry_links(result.body)
        elif kind == "sitemap" and looks_like_sitemap(result.body):
            try:
                sitemap = parse_sitemap(result.body, max_bytes=self.settings.max_response_bytes)
            except (OSError, ValueError) as exc:
                self.tried.append(f"sitemap {url}: unreadable ({exc})")
                return None
            pages = sitemap.pages
            if scope is not None:
                pages = [page for page in pages if scope.why_outside(page) is None]
                if len(pages) < len(sitemap.pages):
                    outside = len(sitemap.pages) - len(pages)
                    self.tried.append(
                        f"sitemap {url}: {outside} of {len(sitemap.pages)} pages outside "
                        f"{scope}, not taken"
                    )
            self._remember(url, result, kind, links=pages, children=sitemap.sitemaps)
            return pages
        else:
            self.tried.append(f"{kind} {url}: not a {kind} ({result.content_type})")
            return None
        self._remember(url, result, kind, links=links)
        return links

    def _expand_index(self, page: FetchedPage) -> None:
        tree = parse_html(decode_html(page.body, page.charset))
        if tree is not None and declares_article(tree):
            self.tried.append("the page declares itself an article (og:type); not expanded")
            self._take_page(self.source, page)
            self._expansion("page", found=1)
            return
        feeds = feed_links(tree, page.url) if tree is not None else []
        links = self._links_in(tree, page.url, scope_of(page.url, self.settings))
        self._remember(self.source, page, "index", links=links, children=feeds)
        self._expand(page.url, feeds, links)
        if not self.outcome.documents and not self.outcome.failures:
            self.tried.append("nothing under the index page; taken as an article")
            self.outcome.expansion = None
            self._take_page(self.source, page)
            self._expansion("page", found=1)

    def _replay(self, url: str, known: PageState) -> None:
        """A page not modified since the last crawl: what it gave then, it gives now."""
        if known.kind == "index":
            self._expand(known.final_url or url, known.children, known.links)
        elif known.kind == "feed":
            self.limit = min(self.limit, self.settings.max_feed_entries)
            self._take_all("feed", known.links, scope=None)
        else:
            self._reuse(known)
            self._expansion("page", found=1)

    def _expand(self, index: str, feeds: list[str], links: list[str]) -> None:
        scope = scope_of(index, self.settings)
        if any(self._try_feed(feed, "feed", scope) for feed in feeds):
            return
        parts = urlsplit(index)
        default = f"{parts.scheme}://{parts.netloc}/sitemap.xml"
        pages = self._sitemap_pages(self.context.fetcher.sitemaps(index) or [default], scope)
        if pages:
            self._take_all("sitemap", [p for p in pages if p != index], scope)
            return
        self._follow_links(index, links, scope)

    def _sitemap_pages(self, sitemaps: list[str], scope: Scope | None) -> list[str]:
        """Pages these sitemaps list in scope, the sitemaps of sitemap indexes followed."""
        queue = deque(sitemaps)
        seen: set[str] = set()
        pages: list[str] = []
        while queue and len(seen) < self.settings.max_sitemap_files:
            sitemap = queue.popleft()
            if sitemap in seen:
                continue
            seen.add(sitemap)
            listed = self._discovery_file(sitemap, "sitemap", scope)
            if listed is not None:
                pages.extend(listed)
                queue.extend(self.state.pages[sitemap].children)
        if queue:
            self.tried.append(
                f"sitemaps beyond the first {self.settings.max_sitemap_files} not read "
                "(features.crawl.max_sitemap_files)"
            )
        return list(dict.fromkeys(pages))

    def _follow_links(self, index: str, links: list[str], scope: Scope) -> None:
        """Breadth-first over same-site links; listings are passed through, not taken."""
        expansion = self._expansion("links")
        frontier = deque((link, 1) for link in links)
        seen = {index, self.source}
        fetched = 0
        while frontier:
            url, depth = frontier.popleft()
            if url in seen:
                continue
            seen.add(url)
            expansion.found += 1
            reason = self._why_not(url, scope) or (
                self._over_limit() if fetched >= self.limit else None
            )
            if reason:
                expansion.left_out.append((url, reason))
                continue
            fetched += 1
            found = self._visit(url, expansion, follow=scope)
            if depth < self.settings.max_link_depth:
                frontier.extend((link, depth + 1) for link in found)
        if self.outside:
            self.tried.append(f"{len(self.outside)} links outside {scope} not followed")

    def _visit(self, url: str, expansion: Expansion, follow: Scope | None = None) -> list[str]:
        """Take one linked page if it is writing; return its links in ``follow`` (if given)."""
        try:
            result = self._get(url)
        except CrawlError as exc:
            self.outcome.failures.append(CrawlFailure(self.source, url, exc.reason))
            return []
        if isinstance(result, PageState):
            if result.kind == "article":
                self._reuse(result)
                expansion.taken += 1
            else:
                expansion.left_out.append((url, "a listing page (mostly links)"))
            return result.links
        tree = parse_html(decode_html(result.body, result.charset))
        links = self._links_in(tree, result.url, follow) if follow else []
        if tree is None or is_listing(tree):
            self._remember(url, result, "listing", links=links)
            expansion.left_out.append((url, "a listing page (mostly links)"))
            return links
        try:
            document = article_from_page(result, origin=self.source, context=self.context)
        except CrawlError as exc:
            expansion.left_out.append((url, exc.reason))
            return links
        self.outcome.documents.append(document)
        self._remember(url, result, "article", links=links, documents=[document.document_id])
        expansion.taken += 1
        return links

    def _links_in(self, tree: HtmlElement | None, base: str, scope: Scope) -> list[str]:
        """The page's links in scope; the others are only counted (state and report stay small)."""
        links = page_links(tree, base) if tree is not None else []
        inside = [link for link in links if scope.why_outside(link) is None]
        self.outside.update(link for link in links if scope.why_outside(link) is not None)
        return inside

    # -- taking pages --------------------------------------------------------------------

    def _take_all(self, method: str, links: list[str], scope: Scope | None) -> None:
        """Take each listed page unless it is out of scope, excluded, disallowed or over limit.

        A feed lists articles; a sitemap lists every page, listings included, so its pages
        are judged as linked pages are.
        """
        expansion = self._expansion(method, found=len(links))
        fetched = 0
        for url in links:
            reason = self._why_not(url, scope) if scope else self._why_not_fetch(url)
            if reason is None and fetched >= self.limit:
                reason = self._over_limit()
            if reason:
                expansion.left_out.append((url, reason))
                continue
            fetched += 1
            if method == "sitemap":
                self._visit(url, expansion)
            else:
                self._take_entry(url, expansion)

    def _take_entry(self, url: str, expansion: Expansion) -> None:
        try:
            result = self._get(url)
            if isinstance(result, PageState):
                self._reuse(result)
            else:
                self._take_page(url, result)
        except CrawlError as exc:
            self.outcome.failures.append(CrawlFailure(self.source, url, exc.reason))
            return
        expansion.taken += 1

    def _take_page(self, url: str, page: FetchedPage) -> None:
        document = article_from_page(page, origin=self.source, context=self.context)
        self.outcome.documents.append(document)
        self._remember(url, page, "article", documents=[document.document_id])

    def _why_not(self, url: str, scope: Scope) -> str | None:
        return scope.why_outside(url) or self._why_not_fetch(url)

    def _why_not_fetch(self, url: str) -> str | None:
        excluded = excluded_reason(url, self.settings)
        if excluded:
            return f"{excluded} (features.crawl.excluded_pages)"
        if not self.context.fetcher.allows(url):
            return "disallowed by robots.txt"
        return None

    def _over_limit(self) -> str:
        return f"over the limit of {self.limit} pages (features.crawl.max_pages)"

    # -- fetching and remembering --------------------------------------------------------

    def _get(self, url: str) -> FetchedPage | PageState:
        """The page, or its state from the last crawl when the server says it did not change."""
        known = self._known(url)
        validators = Validators(known.etag, known.last_modified) if known else None
        self.requests += 1
        if self.requests % _PROGRESS_EVERY == 0:
            logger.info(
                "%s: %d pages requested, %d documents so far (%d unchanged)",
                self.source,
                self.requests,
                len(self.outcome.documents),
                self.outcome.reused,
            )
        page = self.context.fetcher.fetch(url, validators)
        if page.not_modified and known is not None:
            self.state.pages[url] = known
            return known
        return page

    def _known(self, url: str) -> PageState | None:
        """Last crawl's state of ``url`` if it can stand in for the page (validators, documents)."""
        previous = self.previous
        known = previous.state.pages.get(url) if previous else None
        if previous is None or known is None or not (known.etag or known.last_modified):
            return None
        return known if previous.reusable(known.document_ids) is not None else None

    def _reuse(self, known: PageState) -> None:
        documents = (self.previous.reusable(known.document_ids) if self.previous else None) or []
        self.outcome.documents.extend(documents)
        self.outcome.reused += len(documents)

    def _remember(
        self,
        url: str,
        page: FetchedPage,
        kind: PageKind,
        *,
        links: list[str] | None = None,
        children: list[str] | None = None,
        documents: list[str] | None = None,
    ) -> None:
        self.state.pages[url] = PageState(
            kind=kind,
            final_url=page.url,
            etag=page.validators.etag,
            last_modified=page.validators.last_modified,
            links=links or [],
            children=children or [],
            document_ids=documents or [],
        )

    def _expansion(self, method: str, *, found: int = 0) -> Expansion:
        self.outcome.expansion = Expansion(method=method, found=found, tried=list(self.tried))
        return self.outcome.expansion

    def _finish(self) -> CrawlOutcome:
        expansion = self.outcome.expansion
        if expansion is not None:
            expansion.tried = list(self.tried)
            if expansion.method == "page":
                expansion.taken = len(self.outcome.documents)
        self.state.document_ids = [d.document_id for d in self.outcome.documents]
        logger.info(
            "%s: %s, %d pages found, %d taken (%d unchanged), %d left out, %d failed",
            self.source,
            expansion.method if expansion else "nothing",
            expansion.found if expansion else 0,
            len(self.outcome.documents),
            self.outcome.reused,
            len(expansion.left_out) if expansion else 0,
            len(self.outcome.failures),
        )
        return self.outcome
