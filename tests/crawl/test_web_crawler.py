from __future__ import annotations

import pytest

from twin_lib.crawl import CrawlError, Source, crawl_sources
from twin_lib.crawl.safety import HTTP_SCHEMES, check_url
from twin_lib.domain import Category
from twin_lib.settings import CrawlSettings


def crawl_one(url: str, settings: CrawlSettings):
    return crawl_sources([Source(url=url)], author="Ada Writer", settings=settings)


def test_good_article_extracts_main_text_and_title(site, crawl_settings):
    base, _ = site
    report = crawl_one(f"{base}/good", crawl_settings)
    assert not report.failures
    [doc] = report.documents
    assert doc.category is Category.ARTICLE
    assert doc.title == "On Light"
    assert "Let there be light" in doc.text
    assert "Subscribe to the newsletter" not in doc.text
    assert "Home" not in doc.text
    assert doc.source_url == f"{base}/good"
    assert doc.author == "Ada Writer"


def test_malformed_html_still_yields_text(site, crawl_settings):
    base, _ = site
    [doc] = crawl_one(f"{base}/malformed", crawl_settings).documents
    assert "Let there be light" in doc.text


@pytest.mark.parametrize("path", ["/latin1", "/latin1-meta"])
def test_non_utf8_pages_are_decoded(site, crawl_settings, path):
    base, _ = site
    [doc] = crawl_one(f"{base}{path}", crawl_settings).documents
    assert "très épicé" in doc.text
    assert "\ufffd" not in doc.text


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/binary", "binary content"),
        ("/huge", "cap"),
        ("/loop-a", "redirects"),
        ("/missing", "HTTP 404"),
        ("/server-error", "HTTP 500 after 3 attempts"),
        ("/slow", "timed out"),
        ("/private/secret", "robots.txt"),
    ],
)
def test_bad_pages_fail_with_a_reason(site, crawl_settings, path, reason):
    base, _ = site
    report = crawl_one(f"{base}{path}", crawl_settings)
    assert report.documents == []
    assert report.crawled_origins == []
    [failure] = report.failures
    assert reason in failure.reason


def test_redirects_are_followed_within_the_limit(site, crawl_settings):
    base, _ = site
    [doc] = crawl_one(f"{base}/moved", crawl_settings).documents
    assert doc.source_url == f"{base}/good"


def test_transient_errors_are_retried(site, crawl_settings):
    base, counters = site
    [doc] = crawl_one(f"{base}/flaky", crawl_settings).documents
    assert counters["/flaky"] == 2
    assert "Let there be light" in doc.text


def test_robots_txt_is_fetched_once_per_host(site, crawl_settings):
    base, counters = site
    sources = [Source(url=f"{base}/good"), Source(url=f"{base}/malformed")]
    crawl_sources(sources, author="a", settings=crawl_settings)
    assert counters["/robots.txt"] == 1


def test_feed_expands_to_articles_and_records_broken_entries(site, crawl_settings):
    base, _ = site
    report = crawl_one(f"{base}/feed.xml", crawl_settings)
    assert sorted(d.source_url for d in report.documents) == [f"{base}/good", f"{base}/malformed"]
    assert {d.origin for d in report.documents} == {f"{base}/feed.xml"}
    assert [(f.source_url, f.reason) for f in report.failures] == [
        (f"{base}/missing", "HTTP 404; check that the URL is public and live")
    ]
    assert report.crawled_origins == [f"{base}/feed.xml"]
    assert report.complete_origins == []


def test_loopback_is_refused_unless_allowed(site):
    base, counters = site
    report = crawl_one(f"{base}/good", CrawlSettings())
    assert "non-public address" in report.failures[0].reason
    assert counters == {}


def test_private_addresses_are_refused_by_default():
    with pytest.raises(CrawlError, match="non-public address"):
        check_url("http://10.0.0.1/admin", schemes=HTTP_SCHEMES, allow_private=False)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.org/file", "file:///etc/passwd", "gopher://example.org", "javascript:alert(1)"],
)
def test_only_http_schemes_are_fetched(url):
    with pytest.raises(CrawlError, match="not allowed"):
        check_url(url, schemes=HTTP_SCHEMES, allow_private=True)


def test_metadata_host_names_are_refused():
    with pytest.raises(CrawlError, match="metadata"):
        check_url(
            "http://metadata.google.internal/computeMetadata/v1/",
            schemes=HTTP_SCHEMES,
            allow_private=False,
        )


def test_unknown_source_gets_a_clear_error(crawl_settings):
    report = crawl_one("not-a-url-or-folder", crawl_settings)
    assert "no crawler for this source" in report.failures[0].reason


def test_empty_author_is_rejected(crawl_settings):
    with pytest.raises(ValueError, match="author"):
        crawl_sources([], author=" ", settings=crawl_settings)
