"""A polite, bounded HTTP fetcher shared by the article and feed crawlers.

Politeness: robots.txt, one request per host per ``rate_limit_per_host_s``, an honest
user agent. Safety: every hop of a redirect chain is checked by ``safety.check_url``,
responses are streamed and cut at ``max_response_bytes``, binary bodies are refused.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx

from twin_lib.crawl.errors import CrawlError
from twin_lib.crawl.safety import HTTP_SCHEMES, check_url
from twin_lib.settings import CrawlSettings

logger = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class FetchedPage:
    """A successful response: final URL after redirects, media type and raw body."""

    url: str
    content_type: str
    charset: str | None
    body: bytes

    def looks_binary(self) -> bool:
        """NUL bytes do not occur in text of any encoding crawled here (UTF-16 is not)."""
        return b"\x00" in self.body[:8192]


class _RetryableError(Exception):
    pass


class PoliteFetcher:
    """Holds the connection pool, robots.txt cache and per-host clocks for one crawl."""

    def __init__(
        self, settings: CrawlSettings, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._client = httpx.Client(
            headers={"User-Agent": settings.user_agent},
            timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
            follow_redirects=False,
            transport=transport,
        )
        self._robots: dict[str, RobotFileParser | None] = {}
        self._last_request: dict[str, float] = {}

    def __enter__(self) -> PoliteFetcher:
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()

    def fetch(self, url: str) -> FetchedPage:
        """GET a page, honouring robots.txt, following at most ``max_redirects`` redirects."""
        current = url
        for _ in range(self._settings.max_redirects + 1):
            check_url(
                current, schemes=HTTP_SCHEMES, allow_private=self._settings.allow_private_addresses
            )
            if not self._robots_allow(current):
                raise CrawlError(current, "disallowed by robots.txt; the site asks not to crawl it")
            status, headers, body = self._get_with_retries(current)
            if status in _REDIRECT_STATUS:
                location = headers.get("location")
                if not location:
                    raise CrawlError(current, f"redirect {status} without a Location header")
                current = urljoin(current, location)
                continue
            if status >= 400:
                raise CrawlError(current, f"HTTP {status}; check that the URL is public and live")
            media_type, charset = _parse_content_type(headers.get("content-type", ""))
            return FetchedPage(url=current, content_type=media_type, charset=charset, body=body)
        raise CrawlError(url, f"more than {self._settings.max_redirects} redirects (a loop?)")

    def _get_with_retries(self, url: str) -> tuple[int, httpx.Headers, bytes]:
        attempts = self._settings.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._get_once(url)
            except _RetryableError as exc:
                if attempt == attempts:
                    raise CrawlError(
                        url, f"{exc} after {attempts} attempts; try again later"
                    ) from exc
                delay = self._settings.retry_backoff_s * 2 ** (attempt - 1)
                logger.info("retrying %s in %.1fs (%s)", url, delay, exc)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _get_once(self, url: str) -> tuple[int, httpx.Headers, bytes]:
        self._wait_for_host(url)
        cap = self._settings.max_response_bytes
        try:
            with self._client.stream("GET", url) as response:
                if response.status_code in _RETRYABLE_STATUS:
                    raise _RetryableError(f"HTTP {response.status_code}")
                declared = int(response.headers.get("content-length") or 0)
                if declared > cap:
                    raise CrawlError(
                        url, f"response of {declared} bytes exceeds the {cap}-byte cap"
                    )
                body = bytearray()
                for piece in response.iter_bytes():
                    body.extend(piece)
                    if len(body) > cap:
                        raise CrawlError(url, f"response exceeds the {cap}-byte cap")
                return response.status_code, response.headers, bytes(body)
        except httpx.TimeoutException as exc:
            raise _RetryableError(f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _RetryableError(f"connection failed ({exc})") from exc

    def _wait_for_host(self, url: str) -> None:
        host = urlsplit(url).netloc
        last = self._last_request.get(host)
        if last is not None:
            wait = self._settings.rate_limit_per_host_s - (time.monotonic() - last)
            if wait > 0:
                time.sleep(wait)
        self._last_request[host] = time.monotonic()

    def _robots_allow(self, url: str) -> bool:
        if not self._settings.respect_robots_txt:
            return True
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._robots:
            self._robots[origin] = self._load_robots(origin)
        parser = self._robots[origin]
        return parser is None or parser.can_fetch(self._settings.user_agent, url)

    def _load_robots(self, origin: str) -> RobotFileParser | None:
        """None means "no rules": a missing or unreachable robots.txt does not block a site."""
        robots_url = f"{origin}/robots.txt"
        parser = RobotFileParser(robots_url)
        try:
            status, _, body = self._get_once(robots_url)
        except (_RetryableError, CrawlError) as exc:
            logger.warning("robots.txt at %s unreadable (%s); crawling without rules", origin, exc)
            return None
        if status in (401, 403):
            parser.disallow_all = True
        elif status >= 300:
            return None
        else:
            parser.parse(body.decode("utf-8", errors="replace").splitlines())
        return parser


def _parse_content_type(value: str) -> tuple[str, str | None]:
    message = Message()
    message["content-type"] = value or "application/octet-stream"
    return message.get_content_type(), message.get_content_charset()
