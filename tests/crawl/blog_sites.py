"""A loopback site with the shapes a writer's address takes, answering conditional requests.

One server holds four of them: a blog whose home page advertises its feed (``/``), a
manual whose only signpost is the sitemap robots.txt names (``/docs/``), a manual with
neither feed nor sitemap entries, only links (``/manual/``), and a Medium-style profile
(``/@ada``, feed at ``/feed/@ada``). Every page has an ``ETag`` or a ``Last-Modified``;
the server answers 304 when the client's validator matches and counts every status.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler

from tests.support.loopback import serving

MOVED = "moved to "  # a page whose text starts so is a permanent redirect
EPOCH = 1_735_689_600  # feeds' dates: this, plus a number of seconds drawn from their content
ROBOTS = "User-agent: *\nDisallow: /docs/private/\nSitemap: {base}/sitemap-index.xml\n"


def article(title: str, links: tuple[str, ...] = ()) -> str:
    """An article whose text is its own (the title opens every paragraph)."""
    paragraph = (
        f"{title} begins where the river meets the sea. The water is slow and wide, and "
        "the light on it changes with the hour; boats wait for the tide and the gulls wait "
        "for the boats. "
    )
    anchors = "".join(f'<a href="{href}">{href}</a> ' for href in links)
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><nav><a href='/'>Home</a></nav><article><h1>{title}</h1>"
        f"<p>{paragraph * 4}</p><p>{paragraph * 3}</p><p>See also {anchors}</p></article>"
        "</body></html>"
    )


def sphinx_page(title: str) -> str:
    """A documentation page: a short section beside a sidebar that lists the whole manual."""
    toc = "".join(
        f'<li><a href="/manual/ch{n % 4 + 1}">Section {n} of the manual</a></li>' for n in range(40)
    )
    return (
        f"<!doctype html><html><head><title>{title}</title></head><body>"
        f'<div class="sphinxsidebar" role="complementary"><ul>{toc}</ul></div>'
        f'<div class="body" role="main"><section><h1>{title}</h1><p>{title} explains how '
        "the tide tables are read: find the port, then the day, then the hour, and add the "
        "correction for the season. The heights are in metres above chart datum, and the "
        "times are local. Where two tides fall on one day, both are listed in order.</p>"
        "</section></div></body></html>"
    )


def listing(title: str, links: tuple[str, ...], head: str = "") -> str:
    items = "".join(f'<li><a href="{href}">{title} entry {href}</a></li>' for href in links)
    return (
        f"<!doctype html><html><head><title>{title}</title>{head}</head>"
        f"<body><h1>{title}</h1><ul>{items}</ul></body></html>"
    )


def rss(base: str, paths: tuple[str, ...]) -> str:
    items = "".join(f"<item><title>{p}</title><link>{base}{p}</link></item>" for p in paths)
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Blog</title>'
        f"<link>{base}/</link>{items}</channel></rss>"
    )


def urlset(base: str, paths: tuple[str, ...]) -> str:
    urls = "".join(f"<url><loc>{base}{p}</loc></url>" for p in paths)
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'


def sitemap_index(base: str, paths: tuple[str, ...]) -> str:
    maps = "".join(f"<sitemap><loc>{base}{p}</loc></sitemap>" for p in paths)
    return f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{maps}</sitemapindex>'


BLOG_POSTS = ("/posts/one", "/posts/two", "/posts/three")
DOCS_PAGES = ("/docs/one", "/docs/two", "/docs/three")
PROFILE_POSTS = ("/@ada/first-post", "/@ada/second-post")


def site_pages(base: str) -> dict[str, str]:
    """Path -> HTML or XML; ``{base}`` stands for the server's own address."""
    pages = {
        "/robots.txt": ROBOTS.format(base=base),
        "/": listing(
            "Ada's blog",
            (*BLOG_POSTS, "/tag/light", "/about"),
            head='<link rel="alternate" type="application/rss+xml" href="/feed.xml">',
        ),
        "/feed.xml": rss(base, (*BLOG_POSTS,)).replace(
            "</channel>", "<item><link>http://elsewhere.invalid/post</link></item></channel>"
        ),
        "/docs/": listing("Manual", ("/docs/one",)),
        "/sitemap-index.xml": sitemap_index(base, ("/sitemap-docs.xml", "/sitemap-gone.xml")),
        "/sitemap-docs.xml": urlset(
            base,
            (
                "/docs/",
                *DOCS_PAGES,
                "/docs/search?q=light",
                "/docs/private/notes",
                "/elsewhere/page",
            ),
        ),
        "/manual/": listing(
            "Contents",
            ("/manual/ch1", "/manual/ch2", "/manual/parts", "/manual/tags/water", "/login"),
        ),
        "/manual/parts": listing("Parts", ("/manual/ch3",)),
        "/manual/ch1": article("Chapter one", ("/manual/ch4",)),
        "/manual/ch2": sphinx_page("Chapter two"),
        "/manual/ch3": article("Chapter three"),
        "/manual/ch4": article("Chapter four", ("/manual/ch5",)),
        "/manual/ch5": article("Chapter five"),
        "/@ada": listing("Ada on Medium", PROFILE_POSTS),
        "/old-manual/": f"{MOVED}/manual/",
        "/feed/@ada": rss(base, PROFILE_POSTS),
    }
    for path in (*BLOG_POSTS, *DOCS_PAGES, *PROFILE_POSTS, "/docs/private/notes"):
        pages[path] = article(path.rsplit("/", 1)[-1].replace("-", " ").title())
    return pages


@dataclass
class Site:
    """The running site: its address, its pages (edit them to change the site), its log."""

    base: str
    pages: dict[str, str]
    hits: Counter[tuple[str, int]]
    times: list[float]

    def count(self, status: int, paths: tuple[str, ...] | None = None) -> int:
        return sum(
            n for (p, s), n in self.hits.items() if s == status and (paths is None or p in paths)
        )

    def fetched(self, path: str) -> bool:
        return any(p == path for p, _ in self.hits)


class _Handler(BaseHTTPRequestHandler):
    site: Site
    lock: threading.Lock

    def log_message(self, *args: object) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        status, headers, body = self._answer(self.site.pages.get(self.path))
        with self.lock:
            self.site.hits[(self.path, status)] += 1
            self.site.times.append(time.monotonic())
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, text: str | None) -> tuple[int, dict[str, str], bytes]:
        if text is None:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        if text.startswith(MOVED):
            return 301, {"Location": text.removeprefix(MOVED)}, b""
        body = text.encode()
        if self.path == "/robots.txt":
            return 200, {"Content-Type": "text/plain"}, body
        kind = (
            "application/rss+xml"
            if "<rss" in text[:200]
            else ("application/xml" if text.startswith("<?xml") else "text/html; charset=utf-8")
        )
        # Feeds carry only a date, pages only an ETag: both kinds of validator get used.
        digest = hashlib.sha256(body).hexdigest()
        if kind == "application/rss+xml":
            date = formatdate(EPOCH + int(digest[:6], 16), usegmt=True)
            validators = {"Last-Modified": date}
            fresh = self.headers.get("If-Modified-Since") == date
        else:
            validators = {"ETag": f'"{digest[:16]}"'}
            fresh = self.headers.get("If-None-Match") == validators["ETag"]
        if fresh:
            return 304, validators, b""
        return 200, {"Content-Type": kind, **validators}, body


@contextmanager
def blog_site() -> Iterator[Site]:
    """The site on a free loopback port, for the duration of the block."""
    site = Site(base="", pages={}, hits=Counter(), times=[])
    handler = type("BlogHandler", (_Handler,), {"site": site, "lock": threading.Lock()})
    with serving(handler) as server:
        site.base = f"http://127.0.0.1:{server.server_address[1]}"
        site.pages.update(site_pages(site.base))
        yield site
