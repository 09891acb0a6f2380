"""Reading the signposts of a site: which pages an address stands for, and which to skip.

Pure functions over URLs and fetched bytes: feed autodiscovery links, the well-known feed
addresses of Medium and Substack profiles, sitemaps (indexes and gzip included, parsed with
entities and network access off), anchors, the scope of an index page and the patterns of
pages that are listings rather than writing.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from posixpath import dirname
from urllib.parse import urldefrag, urljoin, urlsplit

import feedparser
import lxml.etree
import lxml.html

from twin_lib.settings import CrawlSettings

FEED_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/feed+json", "application/rdf+xml"}
)
_INDEX_NAMES = re.compile(r"^(index|default|home)\.(html?|php|aspx?)$", re.IGNORECASE)
_PROFILE_PATH = re.compile(r"^/(@[^/]+)/?$")
# Hosts whose subdomain root is a writer's profile with its feed at /feed.
_PROFILE_HOSTS = (".substack.com", ".medium.com")
_BOILERPLATE_TAGS = frozenset({"nav", "header", "footer", "aside", "script", "style", "form"})
_BOILERPLATE_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search"})
# Documentation themes put their menus in plain divs: Sphinx "sphinxsidebar", Read the Docs
# "wy-nav-side", MkDocs Material "md-sidebar", "toctree-wrapper", breadcrumbs.
_BOILERPLATE_NAMES = re.compile(r"sidebar|\bmenu|\btoc|toctree|breadcrumb|\bnav", re.IGNORECASE)
# Above this share of a page's text inside links, the page is a listing, not writing.
_LISTING_LINK_SHARE = 0.5
_GZIP_MAGIC = b"\x1f\x8b"


def looks_like_index(url: str) -> bool:
    """A site root, a folder-like path, an ``index.html`` or a profile: stands for pages under it.

    Any other URL names one article; so does an index under which nothing is found.
    """
    path = urlsplit(url).path or "/"
    last = path.rsplit("/", 1)[-1]
    return path.endswith("/") or bool(_INDEX_NAMES.match(last) or _PROFILE_PATH.match(path))


def profile_feeds(url: str) -> list[str]:
    """The feed a profile address is known to have: ``/feed/@user`` (Medium), ``/feed``."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    profile = _PROFILE_PATH.match(parts.path or "/")
    if profile:
        return [f"{origin}/feed/{profile.group(1)}"]
    host = (parts.hostname or "").lower()
    if host.endswith(_PROFILE_HOSTS) and parts.path.strip("/") == "":
        return [f"{origin}/feed"]
    return []


@dataclass(frozen=True)
class Scope:
    """Pages an index stands for: its host and, by default, its path prefix."""

    host: str
    prefix: str

    def __str__(self) -> str:
        return f"{self.host}{self.prefix}"

    def why_outside(self, url: str) -> str | None:
        parts = urlsplit(url)
        if parts.netloc.lower() != self.host:
            return f"on another host ({parts.netloc})"
        if not f"{parts.path or '/'}/".startswith(self.prefix):
            return f"outside {self.prefix}"
        return None


def scope_of(url: str, settings: CrawlSettings) -> Scope:
    """``/blog/`` and ``/blog`` give ``/blog/``; ``/docs/index.html`` gives ``/docs/``."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if not settings.same_path_prefix:
        prefix = "/"
    elif path.endswith("/"):
        prefix = path
    elif _INDEX_NAMES.match(path.rsplit("/", 1)[-1]):
        prefix = dirname(path).rstrip("/") + "/"
    else:
        prefix = path + "/"
    return Scope(host=parts.netloc.lower(), prefix=prefix)


def excluded_reason(url: str, settings: CrawlSettings) -> str | None:
    """The first ``excluded_pages`` reason whose pattern matches the URL's path and query."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    for reason, pattern in settings.excluded_pages.items():
        if re.search(pattern, target, re.IGNORECASE):
            return reason
    return None


def parse_html(text: str) -> lxml.html.HtmlElement | None:
    try:
        return lxml.html.document_fromstring(text)
    except (lxml.etree.ParserError, ValueError):
        return None


def declares_article(tree: lxml.html.HtmlElement) -> bool:
    """Open Graph says so: ``og:type`` article, or ``article:*`` properties (publish time...).

    A post's permalink often looks like a folder (``/2024/05/my-post/``); its metadata
    tells it from a home or index page, which declare ``website`` or nothing.
    """
    for meta in tree.xpath("//meta[@property]"):
        name = (meta.get("property") or "").strip().lower()
        if name.startswith("article:") or (
            name == "og:type" and (meta.get("content") or "").strip().lower() == "article"
        ):
            return True
    return False


def feed_links(tree: lxml.html.HtmlElement, base: str) -> list[str]:
    """``<link rel="alternate" type="application/rss+xml|atom+xml" href>``, in page order."""
    found = []
    for link in tree.xpath("//link[@href]"):
        rels = (link.get("rel") or "").lower().split()
        if "alternate" in rels and (link.get("type") or "").lower().strip() in FEED_TYPES:
            found.append(_absolute(base, link.get("href")))
    return _ordered_unique(u for u in found if u)


def page_links(tree: lxml.html.HtmlElement, base: str) -> list[str]:
    """Every http(s) anchor of the page, absolute, without fragment, in page order."""
    links = (_absolute(base, anchor.get("href")) for anchor in tree.xpath("//a[@href]"))
    return _ordered_unique(u for u in links if u)


def is_listing(tree: lxml.html.HtmlElement) -> bool:
    """Most of the page's main text (menus, sidebars and footers aside) sits inside links.

    The main text is the page's ``<main>`` or ``role="main"`` element, its one ``<article>``,
    or else its body.
    """
    content = _main_content(tree)
    if content is None:
        return False
    for element in [e for e in content.iter() if e is not content and _is_boilerplate(e)]:
        element.drop_tree()
    total = len("".join(content.text_content().split()))
    linked = sum(len("".join(a.text_content().split())) for a in content.xpath(".//a"))
    return total == 0 or linked / total > _LISTING_LINK_SHARE


def _main_content(tree: lxml.html.HtmlElement) -> lxml.html.HtmlElement | None:
    for candidates in (tree.xpath("//main|//*[@role='main']"), tree.xpath("//article")):
        if len(candidates) == 1:
            return candidates[0]
    return tree.find("body")


def _is_boilerplate(element: lxml.html.HtmlElement) -> bool:
    if not isinstance(element.tag, str):
        return False
    names = f"{element.get('class') or ''} {element.get('id') or ''}"
    return (
        element.tag in _BOILERPLATE_TAGS
        or (element.get("role") or "") in _BOILERPLATE_ROLES
        or bool(_BOILERPLATE_NAMES.search(names))
    )


def feed_entry_links(body: bytes) -> list[str]:
    feed = feedparser.parse(body)
    return _ordered_unique(entry.get("link") for entry in feed.entries if entry.get("link"))


@dataclass(frozen=True)
class Sitemap:
    """The page URLs a sitemap lists and, for a sitemap index, the sitemaps it points to."""

    pages: list[str]
    sitemaps: list[str]


def parse_sitemap(body: bytes, *, max_bytes: int) -> Sitemap:
    """A ``urlset`` or ``sitemapindex``, gzip or not; entities and DTDs are never loaded."""
    if body.startswith(_GZIP_MAGIC):
        body = _gunzip(body, max_bytes)
    parser = lxml.etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, recover=True
    )
    root = lxml.etree.fromstring(body, parser=parser)
    if root is None:
        return Sitemap([], [])

    def locations(parent: str) -> list[str]:
        path = f"//*[local-name()='{parent}']/*[local-name()='loc']/text()"
        return _ordered_unique(str(text).strip() for text in root.xpath(path))

    return Sitemap(pages=locations("url"), sitemaps=locations("sitemap"))


def names_sitemap(url: str) -> bool:
    """``/sitemap.xml``, ``/post-sitemap.xml.gz``...: a sitemap given as the source itself."""
    name = urlsplit(url).path.rsplit("/", 1)[-1].lower()
    return "sitemap" in name and name.endswith((".xml", ".xml.gz"))


def looks_like_sitemap(body: bytes) -> bool:
    head = body[:1024].lower()
    return body.startswith(_GZIP_MAGIC) or b"<urlset" in head or b"<sitemapindex" in head


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    """Decompress at most ``max_bytes``: a gzip bomb stops at the cap, not at the memory."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        return inflater.decompress(body, max_bytes)
    except zlib.error as exc:
        raise gzip.BadGzipFile(f"not a valid gzip sitemap ({exc})") from exc


def _absolute(base: str, href: str | None) -> str | None:
    if not href:
        return None
    url = urldefrag(urljoin(base, href.strip())).url
    return url if urlsplit(url).scheme in ("http", "https") else None


def _ordered_unique(urls: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(u for u in urls if u))
