"""Web servers and names that misbehave on purpose, and pages that are not writing.

Each case failed against the previous fetcher: a trickling server held a fetch for as
long as it liked, ``Retry-After`` was ignored, robots.txt wildcards were not understood,
a name could resolve to a public address for the check and to loopback for the
connection, metadata addresses were reachable with private addresses allowed, and wrong
charsets, script shells and permalink marks went into documents.
"""

from __future__ import annotations

import socket
import time

import pytest

from twin_lib.crawl import CrawlError, Source, crawl_sources
from twin_lib.crawl.safety import HTTP_SCHEMES, check_url

pytestmark = pytest.mark.timeout(30)


def crawl_one(url, settings):
    return crawl_sources([Source(url=url)], author="Ada Writer", settings=settings)


@pytest.mark.parametrize("path", ["/trickle", "/trickle-headers"])
def test_a_trickling_server_is_cut_at_the_fetch_deadline(site, crawl_settings, path):
    """One byte every 0.1 s never trips the 0.5 s read timeout; the deadline must end it."""
    base, _ = site
    settings = crawl_settings.model_copy(update={"fetch_deadline_s": 1.0})
    started = time.monotonic()
    report = crawl_one(f"{base}{path}", settings)
    elapsed = time.monotonic() - started
    assert report.documents == []
    assert "within the 1.0s deadline" in report.failures[0].reason
    assert elapsed < 2.5


def test_retry_after_is_honoured(site, crawl_settings):
    base, counters = site
    started = time.monotonic()
    [doc] = crawl_one(f"{base}/busy", crawl_settings).documents
    assert counters["/busy"] == 2
    assert time.monotonic() - started >= 1.0  # the backoff alone would retry after 0.01 s
    assert "Let there be light" in doc.text


def test_a_retry_after_beyond_the_limit_fails_at_once(site, crawl_settings):
    base, counters = site
    report = crawl_one(f"{base}/busy-long", crawl_settings)
    assert counters["/busy-long"] == 1
    assert "retry after 3600s, more than the 30s honoured" in report.failures[0].reason


@pytest.mark.parametrize("path", ["/paper.pdf", "/drafts-2024"])
def test_robots_txt_wildcards_are_understood(site, crawl_settings, path):
    base, counters = site
    report = crawl_one(f"{base}{path}", crawl_settings)
    assert "robots.txt" in report.failures[0].reason
    assert path not in counters
    assert crawl_one(f"{base}/paper.pdf.html", crawl_settings).documents  # "$" anchors


@pytest.fixture
def fake_dns(monkeypatch):
    """Answers for names under ``.test`` that change per lookup, as a rebinding server does.

    No DNS server can be pointed at from here (the resolver is the system's), so lookups of
    these names are answered in-process; every other lookup goes to the real resolver.
    """
    real = socket.getaddrinfo
    answers: dict[str, list[str]] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".test"):
            queue = answers[host]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_connection_goes_only_to_the_address_that_was_checked(site, crawl_settings, fake_dns):
    """Public for the check, loopback afterwards: nothing may reach the loopback server."""
    base, counters = site
    port = base.rsplit(":", 1)[1]
    fake_dns["rebind.test"] = ["93.184.216.34", "127.0.0.1"]
    strict = crawl_settings.model_copy(update={"allow_private_addresses": False})
    report = crawl_one(f"http://rebind.test:{port}/good", strict)
    assert counters == {}
    assert report.documents == []
    assert "non-public address(es) ['127.0.0.1']" in report.failures[0].reason


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://100.100.100.200/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
    ],
)
def test_metadata_addresses_are_refused_even_when_private_ones_are_allowed(url):
    with pytest.raises(CrawlError, match="cloud metadata"):
        check_url(url, schemes=HTTP_SCHEMES, allow_private=True)


def test_names_resolving_to_metadata_are_refused_at_connection(site, crawl_settings, fake_dns):
    base, counters = site
    port = base.rsplit(":", 1)[1]
    fake_dns["meta.test"] = ["127.0.0.1", "169.254.169.254"]
    report = crawl_one(f"http://meta.test:{port}/good", crawl_settings)
    assert "cloud metadata address(es) ['169.254.169.254']" in report.failures[0].reason
    assert "/good" not in counters


def test_redirect_to_metadata_is_refused_with_private_addresses_allowed(site, crawl_settings):
    base, _ = site
    report = crawl_one(f"{base}/to-metadata", crawl_settings)
    assert "cloud metadata address" in report.failures[0].reason


@pytest.mark.parametrize("path", ["/utf8-as-latin1", "/latin1-as-utf8"])
def test_a_wrong_charset_header_does_not_damage_the_text(site, crawl_settings, path):
    base, _ = site
    [doc] = crawl_one(f"{base}{path}", crawl_settings).documents
    assert "Le café était très épicé, à la française, naïve et déjà vu." in doc.text
    assert doc.title == "Déjà vu"
    assert "\ufffd" not in doc.text
    assert "Ã" not in doc.text


@pytest.mark.parametrize("path", ["/js-shell", "/js-search"])
def test_script_shells_are_not_documents(site, crawl_settings, path):
    base, _ = site
    report = crawl_one(f"{base}{path}", crawl_settings)
    assert report.documents == []
    assert report.failures[0].reason.startswith("the page is a script-rendered shell")


def test_permalink_marks_are_stripped(site, crawl_settings):
    base, _ = site
    [doc] = crawl_one(f"{base}/docs", crawl_settings).documents
    lines = doc.text.splitlines()
    assert {"Usage", "Notes"} <= set(lines)
    assert not any(mark in doc.text for mark in ("\u00b6", "\U0001f517"))
    assert not any(line.rstrip().endswith(" #") for line in lines)
