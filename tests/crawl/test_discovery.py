"""From one address to the author's writing: a blog's home page, a sitemap-only manual, a
manual of links, a profile. Each failed before: the crawler read the one page it was given
(the home page or table of contents became the only document, the profile failed)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import pytest

from tests.crawl.blog_sites import BLOG_POSTS, DOCS_PAGES, PROFILE_POSTS, Site, blog_site
from twin_lib.crawl import Source, crawl_sources
from twin_lib.crawl.discovery import parse_sitemap
from twin_lib.crawl.sources import CrawlReport
from twin_lib.crawl.syndication import SYNDICATED_AT, merge_syndicated
from twin_lib.settings import CrawlSettings

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def blog() -> Iterator[Site]:
    with blog_site() as site:
        yield site


def crawl(site: Site, path: str, settings: CrawlSettings) -> CrawlReport:
    return crawl_sources([Source(url=site.base + path)], author="Ada", settings=settings)


def urls(report: CrawlReport, site: Site) -> list[str]:
    return sorted(d.source_url.removeprefix(site.base) for d in report.documents)


def left_out(report: CrawlReport, site: Site) -> dict[str, str]:
    [expansion] = report.expansions.values()
    return {url.removeprefix(site.base): reason for url, reason in expansion.left_out}


def test_a_blog_home_page_expands_through_its_advertised_feed(blog, crawl_settings):
    report = crawl(blog, "/", crawl_settings)
    assert urls(report, blog) == sorted(BLOG_POSTS)
    expansion = report.expansions[blog.base + "/"]
    assert (expansion.method, expansion.found, expansion.taken) == ("feed", 4, 3)
    assert left_out(report, blog) == {
        "http://elsewhere.invalid/post": "on another host (elsewhere.invalid)"
    }
    assert not report.failures
    assert not blog.fetched("/tag/light")  # the home page's other links were not needed


def test_a_sitemap_only_site_is_read_through_robots_txt_and_a_sitemap_index(blog, crawl_settings):
    report = crawl(blog, "/docs/", crawl_settings)
    assert urls(report, blog) == sorted(DOCS_PAGES)
    assert left_out(report, blog) == {
        "/docs/search?q=light": "search page (features.crawl.excluded_pages)",
        "/docs/private/notes": "disallowed by robots.txt",
    }
    expansion = report.expansions[blog.base + "/docs/"]
    assert (expansion.method, expansion.found, expansion.taken) == ("sitemap", 5, 3)
    assert any("sitemap-gone.xml: none there" in note for note in expansion.tried)
    host = blog.base.removeprefix("http://")
    assert f"1 of 7 pages outside {host}/docs/, not taken" in " ".join(expansion.tried)
    assert not blog.fetched("/docs/private/notes") and not blog.fetched("/docs/search?q=light")


def test_an_index_without_feed_or_sitemap_is_followed_by_its_links(blog, crawl_settings):
    report = crawl(blog, "/manual/", crawl_settings)
    assert urls(report, blog) == ["/manual/ch1", "/manual/ch2", "/manual/ch3", "/manual/ch4"]
    assert left_out(report, blog) == {
        "/manual/parts": "a listing page (mostly links)",
        "/manual/tags/water": "tag or category listing (features.crawl.excluded_pages)",
    }
    expansion = report.expansions[blog.base + "/manual/"]
    assert expansion.method == "links"
    assert any("7 of 7 pages outside" in note for note in expansion.tried)
    host = blog.base.removeprefix("http://")
    assert f"2 links outside {host}/manual/ not followed" in expansion.tried  # / and /login
    assert not blog.fetched("/login")
    assert not blog.fetched("/manual/ch5")  # three hops away, beyond max_link_depth=2


def test_a_profile_address_is_read_through_its_well_known_feed(blog, crawl_settings):
    report = crawl(blog, "/@ada", crawl_settings)
    assert urls(report, blog) == sorted(PROFILE_POSTS)
    assert report.expansions[blog.base + "/@ada"].method == "profile feed"
    assert not blog.fetched("/@ada")  # a script-rendered profile page is never needed


def test_an_article_address_stays_one_document(blog, crawl_settings):
    report = crawl(blog, "/manual/ch1", crawl_settings)
    assert urls(report, blog) == ["/manual/ch1"]
    assert report.expansions[blog.base + "/manual/ch1"].method == "page"
    assert not blog.fetched("/manual/ch4")


def test_page_and_depth_limits_are_honoured(blog, crawl_settings):
    two_pages = crawl_settings.model_copy(update={"max_pages": 2})
    report = crawl(blog, "/docs/", two_pages)
    assert len(report.documents) == 2
    reasons = left_out(report, blog)
    assert reasons["/docs/three"] == "over the limit of 2 pages (features.crawl.max_pages)"
    assert not blog.fetched("/docs/three")

    one_hop = crawl_settings.model_copy(update={"max_link_depth": 1})
    report = crawl(blog, "/manual/", one_hop)
    assert urls(report, blog) == ["/manual/ch1", "/manual/ch2"]
    assert not blog.fetched("/manual/ch4") and not blog.fetched("/manual/ch3")


def test_discovery_can_be_turned_off(blog, crawl_settings):
    """Off, the address is one page again: the table of contents, as before discovery."""
    single = crawl_settings.model_copy(update={"discover_sites": False})
    report = crawl(blog, "/manual/", single)
    assert urls(report, blog) == ["/manual/"]
    assert not blog.fetched("/manual/ch1")


def test_the_per_host_delay_spaces_discovery_requests(blog, crawl_settings):
    polite = crawl_settings.model_copy(update={"rate_limit_per_host_s": 0.2})
    crawl(blog, "/@ada", polite)
    gaps = [later - earlier for earlier, later in zip(blog.times, blog.times[1:], strict=False)]
    assert len(gaps) >= 3 and min(gaps) >= 0.19


def test_a_robots_crawl_delay_longer_than_the_per_host_delay_is_honoured(blog, crawl_settings):
    blog.pages["/robots.txt"] += "Crawl-delay: 0.3\n"
    crawl(blog, "/@ada", crawl_settings)  # the per-host delay is 0 here
    gaps = [later - earlier for earlier, later in zip(blog.times, blog.times[1:], strict=False)]
    assert len(gaps) >= 3 and min(gaps[1:]) >= 0.29  # after robots.txt has been read


def test_a_syndicated_article_is_one_document_with_both_urls(blog, crawl_settings):
    with blog_site() as mirror:
        mirror.pages["/mirror/one"] = blog.pages["/posts/one"]
        sources = [Source(url=blog.base + "/posts/one"), Source(url=mirror.base + "/mirror/one")]
        report = crawl_sources(sources, author="Ada", settings=crawl_settings)
    assert len(report.documents) == 2
    [merged] = merge_syndicated(report.documents)
    assert merged.source_url == blog.base + "/posts/one"
    assert merged.metadata[SYNDICATED_AT] == mirror.base + "/mirror/one"


def test_hostile_sitemaps_neither_expand_entities_nor_inflate_past_the_cap():
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b"<urlset><url><loc>http://x.invalid/&c;</loc></url></urlset>"
    )
    [loc] = parse_sitemap(bomb, max_bytes=10_000).pages
    assert len(loc) < 100
    late = b"<url><loc>http://x.invalid/late</loc></url></urlset>"
    zipped = gzip.compress(b"<urlset>" + b" " * 50_000 + late)
    assert parse_sitemap(zipped, max_bytes=10_000).pages == []  # inflated only to the cap
    assert parse_sitemap(zipped, max_bytes=100_000).pages == ["http://x.invalid/late"]


def test_a_sitemap_given_as_the_source_lists_its_pages_without_the_listings(blog, crawl_settings):
    blog.pages["/sitemap-docs.xml"] = blog.pages["/sitemap-docs.xml"].replace(
        "</urlset>", f"<url><loc>{blog.base}/manual/parts</loc></url></urlset>"
    )
    report = crawl(blog, "/sitemap-index.xml", crawl_settings)
    assert urls(report, blog) == sorted(DOCS_PAGES)
    reasons = left_out(report, blog)
    assert reasons["/docs/"] == reasons["/manual/parts"] == "a listing page (mostly links)"
    [missing] = report.failures  # a 404 is a failure, reported as such
    assert missing.source_url == blog.base + "/elsewhere/page" and "404" in missing.reason


def test_linked_pages_that_fail_are_failures_not_documents(blog, crawl_settings):
    blog.pages["/manual/"] = blog.pages["/manual/"].replace("/manual/ch2", "/manual/gone")
    report = crawl(blog, "/manual/", crawl_settings)
    assert [(f.source_url, f.reason[:8]) for f in report.failures] == [
        (blog.base + "/manual/gone", "HTTP 404")
    ]
    assert "/manual/ch2" not in urls(report, blog)


def test_a_copy_naming_its_original_as_canonical_is_merged_into_the_original(blog, crawl_settings):
    """Syndication platforms add a footer to the text; the canonical link still says who."""
    with blog_site() as mirror:
        original = blog.base + "/posts/one"
        mirror.pages["/imported"] = (
            blog.pages["/posts/one"]
            .replace("<title>", f'<link rel="canonical" href="{original}"><title>')
            .replace("</article>", "<p>Originally published on Ada's blog.</p></article>")
        )
        sources = [Source(url=mirror.base + "/imported"), Source(url=original)]
        report = crawl_sources(sources, author="Ada", settings=crawl_settings)
    [merged] = merge_syndicated(report.documents)
    assert merged.source_url == original  # the original, although the copy came first
    assert merged.metadata == {SYNDICATED_AT: mirror.base + "/imported"}


def test_pages_naming_one_uncrawled_canonical_address_stay_apart(blog, crawl_settings):
    """A site that names its home page canonical for every page must not fold its pages."""
    with blog_site() as other:
        for path in ("/posts/one", "/posts/two"):
            other.pages[path] = blog.pages[path].replace(
                "<title>", '<link rel="canonical" href="http://elsewhere.invalid/"><title>'
            )
        sources = [Source(url=other.base + p) for p in ("/posts/one", "/posts/two")]
        report = crawl_sources(sources, author="Ada", settings=crawl_settings)
    assert len(merge_syndicated(report.documents)) == 2


def test_a_post_at_a_folder_like_address_that_declares_itself_an_article_is_one_document(
    blog, crawl_settings
):
    blog.pages["/2024/05/on-tides/"] = blog.pages["/posts/one"].replace(
        "<title>", '<meta property="og:type" content="article"><title>'
    )
    report = crawl(blog, "/2024/05/on-tides/", crawl_settings)
    assert urls(report, blog) == ["/2024/05/on-tides/"]
    assert not blog.fetched("/sitemap-index.xml")  # no discovery requests for a post
