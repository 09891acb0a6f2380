"""A polite, bounded HTTP fetcher shared by the article and feed crawlers.

Politeness: robots.txt (with wildcards, via protego), one request per host per
``rate_limit_per_host_s`` or the robots.txt ``Crawl-delay`` if longer, the server's
``Retry-After``, an honest user agent. Safety: every hop of a redirect chain is checked by
``safety.check_url`` and connected to only at the addresses that passed the check
(``network``); a whole fetch, retries included, ends by ``fetch_deadline_s``; responses
are streamed and cut at ``max_response_bytes``.
Refresh: a page fetched before is asked for with its validators (``If-None-Match``,
``If-Modified-Since``); a 304 answer costs no body and says the previous result still holds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx
import tenacity
from protego import Protego

from twin_lib.crawl.errors import CrawlError
from twin_lib.crawl.network import DeadlineBackend, pinned_transport
from twin_lib.crawl.safety import HTTP_SCHEMES, check_url
from twin_lib.settings import CrawlSettings

logger = logging.getLogger(__name__)

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class Validators:
    """What a server said identifies a response's version (``ETag``, ``Last-Modified``)."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        asked = {"If-None-Match": self.etag, "If-Modified-Since": self.last_modified}
        return {name: value for name, value in asked.items() if value}


@dataclass(frozen=True)
class FetchedPage:
    """A successful response: final URL after redirects, media type and raw body.

    ``not_modified`` is a 304 to a conditional request: no body, the previous one holds.
    """

    url: str
    content_type: str
    charset: str | None
    body: bytes
    validators: Validators = Validators()
    not_modified: bool = False

    def looks_binary(self) -> bool:
        """NUL bytes do not occur in text of any encoding crawled here (UTF-16 is not)."""
        return b"\x00" in self.body[:8192]


class _RetryableError(Exception):
    """A failure worth another attempt; ``retry_after`` is the wait the server asked for."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PoliteFetcher:
    """Holds the connection pool, robots.txt cache and per-host clocks for one crawl."""

    def __init__(
        self, settings: CrawlSettings, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._settings = settings
        self._network = DeadlineBackend(allow_private=settings.allow_private_addresses)
        self._client = httpx.Client(
            headers={"User-Agent": settings.user_agent},
            timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
            follow_redirects=False,
            transport=transport or pinned_transport(self._network),
        )
        self._robots: dict[str, Protego | None] = {}
        self._last_request: dict[str, float] = {}
        self._capped: set[str] = set()

    def __enter__(self) -> PoliteFetcher:
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()

    def fetch(self, url: str, known: Validators | None = None) -> FetchedPage:
        """GET a page within ``fetch_deadline_s``, honouring robots.txt and redirect limits.

        With ``known`` validators the request is conditional and may come back not modified.
        """
        self._network.deadline = time.monotonic() + self._settings.fetch_deadline_s
        try:
            return self._follow(url, known.headers() if known else {})
        finally:
            self._network.deadline = None

    def allows(self, url: str) -> bool:
        """Whether robots.txt lets this crawler fetch ``url`` (read once per host)."""
        return self._robots_allow(url)

    def sitemaps(self, url: str) -> list[str]:
        """The ``Sitemap:`` lines of the robots.txt of ``url``'s host."""
        rules = self._rules(url)
        return list(rules.sitemaps) if rules is not None else []

    def _follow(self, url: str, conditions: dict[str, str]) -> FetchedPage:
        current = url
        for _ in range(self._settings.max_redirects + 1):
            check_url(
                current, schemes=HTTP_SCHEMES, allow_private=self._settings.allow_private_addresses
            )
            if not self._robots_allow(current):
                raise CrawlError(current, "disallowed by robots.txt; the site asks not to crawl it")
            status, headers, body = self._get_with_retries(current, conditions)
            if status == 304 and conditions:
                return FetchedPage(
                    url=current, content_type="", charset=None, body=b"", not_modified=True
                )
            if status in _REDIRECT_STATUS:
                location = headers.get("location")
                if not location:
                    raise CrawlError(current, f"redirect {status} without a Location header")
                current = urljoin(current, location)
                continue
            if status >= 400:
                raise CrawlError(current, f"HTTP {status}; check that the URL is public and live")
            media_type, charset = _parse_content_type(headers.get("content-type", ""))
            validators = Validators(
                headers.get("etag"),
                settled_last_modified(headers.get("last-modified"), headers.get("date")),
            )
            return FetchedPage(current, media_type, charset, body, validators)
        raise CrawlError(url, f"more than {self._settings.max_redirects} redirects (a loop?)")

    def _get_with_retries(
        self, url: str, conditions: dict[str, str]
    ) -> tuple[int, httpx.Headers, bytes]:
        """Exponential backoff, or the server's ``Retry-After`` if longer, within the deadline."""
        attempts = self._settings.retries + 1
        backoff = tenacity.wait_exponential(multiplier=self._settings.retry_backoff_s)
        deadline = self._network.deadline or float("inf")
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_RetryableError),
            stop=tenacity.stop_any(
                tenacity.stop_after_attempt(attempts),
                lambda state: time.monotonic() + state.upcoming_sleep >= deadline,
            ),
            wait=lambda state: max(backoff(state), _asked_wait(state)),
            before_sleep=lambda state: logger.info(
                "retrying %s in %.1fs (%s)", url, state.upcoming_sleep, state.outcome.exception()
            ),
            reraise=True,
        )
        try:
            return retrying(self._get_once, url, conditions)
        except _RetryableError as exc:
            tries = retrying.statistics.get("attempt_number", attempts)
            raise CrawlError(url, f"{exc} after {tries} attempts; try again later") from exc

    def _get_once(
        self, url: str, conditions: dict[str, str] | None = None
    ) -> tuple[int, httpx.Headers, bytes]:
        self._wait_for_host(url)
        cap = self._settings.max_response_bytes
        try:
            with self._client.stream("GET", url, headers=conditions) as response:
                if response.status_code in _RETRYABLE_STATUS:
                    raise self._retryable_status(url, response)
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
        except CrawlError as exc:
            raise CrawlError(url, exc.reason) from exc
        except httpx.TimeoutException as exc:
            if self._network.deadline is not None and time.monotonic() >= self._network.deadline:
                raise CrawlError(
                    url,
                    f"no complete response within the {self._settings.fetch_deadline_s}s "
                    "deadline; the server is too slow",
                ) from exc
            raise _RetryableError(f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _RetryableError(f"connection failed ({exc})") from exc

    def _retryable_status(self, url: str, response: httpx.Response) -> Exception:
        """A 429/5xx to retry, after the wait the server asks for if it asks for one we honour."""
        asked = _retry_after_s(response.headers.get("retry-after"))
        limit = self._settings.max_retry_after_s
        if asked > limit:
            return CrawlError(
                url,
                f"HTTP {response.status_code} asking to retry after {asked:.0f}s, more than the "
                f"{limit:.0f}s honoured; try again later",
            )
        return _RetryableError(f"HTTP {response.status_code}", retry_after=asked)

    def _host_delay(self, url: str) -> float:
        """The per-host delay, or the robots.txt ``Crawl-delay`` if longer (up to its cap)."""
        parts = urlsplit(url)
        rules = self._robots.get(f"{parts.scheme}://{parts.netloc}")
        asked = rules.crawl_delay(self._settings.user_agent) if rules is not None else None
        if asked and asked > self._settings.max_crawl_delay_s and parts.netloc not in self._capped:
            self._capped.add(parts.netloc)
            logger.warning(
                "%s asks for %.0fs between requests; waiting %.0fs "
                "(features.crawl.max_crawl_delay_s)",
                parts.netloc,
                asked,
                self._settings.max_crawl_delay_s,
            )
        honoured = min(asked or 0.0, self._settings.max_crawl_delay_s)
        return max(self._settings.rate_limit_per_host_s, honoured)

    def _wait_for_host(self, url: str) -> None:
        host = urlsplit(url).netloc
        last = self._last_request.get(host)
        if last is not None:
            wait = self._host_delay(url) - (time.monotonic() - last)
            if wait > 0:
                time.sleep(wait)
        self._last_request[host] = time.monotonic()

    def _robots_allow(self, url: str) -> bool:
        if not self._settings.respect_robots_txt:
            return True
        rules = self._rules(url)
        return rules is None or rules.can_fetch(url, self._settings.user_agent)

    def _rules(self, url: str) -> Protego | None:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._robots:
            self._robots[origin] = self._load_robots(origin)
        return self._robots[origin]

    def _load_robots(self, origin: str) -> Protego | None:
        """None means "no rules": a missing or unreachable robots.txt does not block a site."""
        try:
            status, _, body = self._get_once(f"{origin}/robots.txt")
        except (_RetryableError, CrawlError) as exc:
            logger.warning("robots.txt at %s unreadable (%s); crawling without rules", origin, exc)
            return None
        if status in (401, 403):
            return Protego.parse("User-agent: *\nDisallow: /\n")
        if status >= 300:
            return None
        return Protego.parse(body.decode("utf-8", errors="replace"))


# RFC 9110 8.8.2.2: a modification date at least this old when served cannot hide a
# second change within the same second; a younger one is not used as a validator.
_SETTLED_S = 60.0


def settled_last_modified(last_modified: str | None, served: str | None) -> str | None:
    """``Last-Modified`` if it was at least a minute old when served, else None."""
    if not last_modified:
        return None
    try:
        modified = parsedate_to_datetime(last_modified)
        now = parsedate_to_datetime(served) if served else datetime.now(UTC)
    except (TypeError, ValueError):
        return None
    if modified.tzinfo is None or now.tzinfo is None:
        return None
    return last_modified if (now - modified).total_seconds() >= _SETTLED_S else None


def _asked_wait(state: tenacity.RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    return error.retry_after if isinstance(error, _RetryableError) else 0.0


def _retry_after_s(value: str | None) -> float:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date); 0 if none."""
    if not value:
        return 0.0
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _parse_content_type(value: str) -> tuple[str, str | None]:
    message = Message()
    message["content-type"] = value or "application/octet-stream"
    return message.get_content_type(), message.get_content_charset()
