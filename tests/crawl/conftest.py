"""A loopback HTTP server with pages that exercise every way a real site can misbehave."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from tests.support.loopback import serving
from twin_lib.settings import CrawlSettings

PARAGRAPH = (
    "And God said, Let there be light: and there was light. And God saw the light, that it "
    "was good: and God divided the light from the darkness. "
)
GOOD_ARTICLE = f"""<!doctype html><html><head><meta charset="utf-8">
<title>On Light | A Blog</title></head><body>
<nav><a href="/">Home</a> <a href="/about">About</a></nav>
<article><h1>On Light</h1><p>{PARAGRAPH * 4}</p><p>{PARAGRAPH * 3}</p></article>
<footer>Copyright nobody. Subscribe to the newsletter.</footer></body></html>"""
MALFORMED = f"""<html><head><title>Broken markup</title><body><div><p>{PARAGRAPH * 4}
<p>Unclosed <b>bold and <i>italic {PARAGRAPH * 2}</div></span></html>"""
LATIN1 = (
    "<html><head><title>Café résumé</title></head><body><article><h1>Café</h1><p>"
    + "Le café était très épicé, à la française, naïve et déjà vu. " * 8
    + "</p></article></body></html>"
).encode("iso-8859-1")
LATIN1_META = LATIN1.replace(
    b"<head>", b'<head><meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">'
)
SHELL = b"""<!doctype html><html><head><title>Search</title></head><body>
<noscript>You need to enable JavaScript to run this app.</noscript><div id="root"></div>
<script src="/static/app.js"></script></body></html>"""
SEARCH = b"""<html><head><title>Search results</title></head><body><header><a href="/">Blog</a>
</header><main><h1>Search</h1><p>Please enable JavaScript to view the search results.</p>
</main></body></html>"""
DOCS = f"""<html><head><title>Guide</title></head><body><div role="main"><section>
<h1>Guide<a class="headerlink" href="#guide" title="Link to this heading">\u00b6</a></h1>
<p>{PARAGRAPH * 3}</p><h2 id="usage">Usage <a class="anchor" href="#usage">#</a></h2>
<p>{PARAGRAPH * 2}</p><h3>Notes<a href="#notes">\U0001f517</a></h3><p>{PARAGRAPH * 2}</p>
</section></div></body></html>""".encode()
ACCENTED = (
    "<html><head><title>Déjà vu</title></head><body><article><h1>Déjà vu</h1><p>"
    + "Le café était très épicé, à la française, naïve et déjà vu. " * 8
    + "</p></article></body></html>"
)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8


def _feed(base: str) -> str:
    items = "".join(
        f"<item><title>{name}</title><link>{base}{path}</link></item>"
        for name, path in [("Light", "/good"), ("Broken", "/missing"), ("Markup", "/malformed")]
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Blog</title><link>{base}/</link>{items}</channel></rss>"
    )


class Handler(BaseHTTPRequestHandler):
    counters: dict[str, int]

    def log_message(self, *args: object) -> None:
        """Keep test output clean."""

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _trickle(self, head: bytes, tail: bytes) -> None:
        """Send ``head`` at once, then ``tail`` one byte per 0.1 s: never a read timeout."""
        try:
            self.wfile.write(head)
            for byte in tail:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            self.close_connection = True  # the client gave up, as it should

    def do_GET(self) -> None:
        self.counters[self.path] = self.counters.get(self.path, 0) + 1
        base = f"http://{self.headers['Host']}"
        routes = {
            "/robots.txt": lambda: self._send(
                200,
                b"User-agent: *\nDisallow: /private/\nDisallow: /*.pdf$\nDisallow: /drafts*\n",
                "text/plain",
            ),
            "/paper.pdf": lambda: self._send(200, GOOD_ARTICLE.encode()),
            "/paper.pdf.html": lambda: self._send(200, GOOD_ARTICLE.encode()),
            "/drafts-2024": lambda: self._send(200, GOOD_ARTICLE.encode()),
            "/utf8-as-latin1": lambda: self._send(
                200, ACCENTED.encode(), "text/html; charset=iso-8859-1"
            ),
            "/latin1-as-utf8": lambda: self._send(
                200, ACCENTED.encode("latin-1"), "text/html; charset=utf-8"
            ),
            "/js-shell": lambda: self._send(200, SHELL),
            "/js-search": lambda: self._send(200, SEARCH),
            "/docs": lambda: self._send(200, DOCS),
            "/busy-long": lambda: self._send(503, b"maintenance", headers={"Retry-After": "3600"}),
            "/good": lambda: self._send(200, GOOD_ARTICLE.encode()),
            "/malformed": lambda: self._send(200, MALFORMED.encode()),
            "/latin1": lambda: self._send(200, LATIN1, "text/html; charset=iso-8859-1"),
            "/latin1-meta": lambda: self._send(200, LATIN1_META, "text/html"),
            "/binary": lambda: self._send(200, PNG, "text/html"),
            "/huge": lambda: self._send(200, b"<html><body><p>" + b"x" * 300_000 + b"</p>"),
            "/loop-a": lambda: self._send(302, b"", headers={"Location": "/loop-b"}),
            "/loop-b": lambda: self._send(302, b"", headers={"Location": "/loop-a"}),
            "/moved": lambda: self._send(301, b"", headers={"Location": "/good"}),
            "/to-metadata": lambda: self._send(
                302, b"", headers={"Location": "http://169.254.169.254/latest/meta-data/"}
            ),
            "/server-error": lambda: self._send(500, b"boom"),
            "/private/secret": lambda: self._send(200, GOOD_ARTICLE.encode()),
            "/feed.xml": lambda: self._send(200, _feed(base).encode(), "application/rss+xml"),
            "/empty": lambda: self._send(200, b"<html><body><nav>menu</nav></body></html>"),
        }
        if self.path == "/slow":
            time.sleep(2.0)
            self._send(200, GOOD_ARTICLE.encode())
        elif self.path == "/trickle":
            self._trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", b"x" * 1000)
        elif self.path == "/trickle-headers":
            self._trickle(b"", b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"y" * 1000)
        elif self.path == "/busy":
            if self.counters[self.path] == 1:
                self._send(429, b"slow down", headers={"Retry-After": "1"})
            else:
                self._send(200, GOOD_ARTICLE.encode())
        elif self.path == "/flaky":
            if self.counters[self.path] == 1:
                self._send(503, b"try later")
            else:
                self._send(200, GOOD_ARTICLE.encode())
        elif self.path in routes:
            routes[self.path]()
        else:
            self._send(404, b"not found")


@pytest.fixture
def site() -> Iterator[tuple[str, dict[str, int]]]:
    """Base URL of a fresh loopback site and its per-path request counters."""
    counters: dict[str, int] = {}
    handler = type("SiteHandler", (Handler,), {"counters": counters})
    with serving(handler) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}", counters


@pytest.fixture
def crawl_settings() -> CrawlSettings:
    """Loopback is private, so tests must allow it explicitly; everything else stays strict."""
    return CrawlSettings(
        allow_private_addresses=True,
        rate_limit_per_host_s=0.0,
        retry_backoff_s=0.01,
        read_timeout_s=0.5,
        connect_timeout_s=0.5,
        max_response_bytes=100_000,
        max_redirects=3,
    )
