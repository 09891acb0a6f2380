"""A second crawl of unchanged sources asks only whether they changed, and reuses the rest.

Each failed before: every crawl fetched every page again (the server saw only 200s),
cloned every repository again and read every file again.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.crawl.blog_sites import BLOG_POSTS, DOCS_PAGES, PROFILE_POSTS, Site, blog_site
from tests.crawl.sources_on_disk import git
from twin_lib.crawl import Source, crawl_sources
from twin_lib.crawl.fetcher import settled_last_modified
from twin_lib.crawl.sources import CrawlReport
from twin_lib.crawl.state import PreviousCrawl
from twin_lib.settings import CrawlSettings

pytestmark = pytest.mark.timeout(30)

FIRST = datetime(2026, 1, 1, tzinfo=UTC)
LATER = datetime(2026, 2, 1, tzinfo=UTC)
CHAPTERS = ("/manual/ch1", "/manual/ch2", "/manual/ch3", "/manual/ch4")
ARTICLES = (*BLOG_POSTS, *DOCS_PAGES, *PROFILE_POSTS, *CHAPTERS)


@pytest.fixture
def blog() -> Iterator[Site]:
    with blog_site() as site:
        yield site


def previous_of(report: CrawlReport) -> dict[str, PreviousCrawl]:
    """What the raw lake hands the next crawl: each source's state and the documents."""
    documents = {d.document_id: d for d in report.documents}
    return {url: PreviousCrawl(state, documents) for url, state in report.states.items()}


def run(sources: list[str], settings: CrawlSettings, **kwargs: object) -> CrawlReport:
    return crawl_sources(
        [Source(url=s) for s in sources], author="Ada", settings=settings, **kwargs
    )


def test_unchanged_pages_are_asked_for_conditionally_and_reused(blog, crawl_settings):
    sources = [blog.base + path for path in ("/", "/docs/", "/manual/", "/@ada")]
    first = run(sources, crawl_settings, crawled_at=FIRST)
    assert blog.count(200, ARTICLES) == len(ARTICLES) and blog.count(304) == 0
    blog.hits.clear()

    second = run(sources, crawl_settings, crawled_at=LATER, previous=previous_of(first))
    assert blog.count(200, ARTICLES) == 0
    assert blog.count(304, ARTICLES) == len(ARTICLES)
    assert blog.count(200) == 1  # robots.txt, which is read once per crawl
    assert second.reused == len(first.documents) == len(ARTICLES)
    assert {(d.document_id, d.content_hash) for d in second.documents} == {
        (d.document_id, d.content_hash) for d in first.documents
    }
    assert {d.crawled_at for d in second.documents} == {FIRST}  # handed back, not re-read
    assert second.expansions[blog.base + "/docs/"].left_out  # still says what it left out


def test_a_changed_page_is_fetched_and_the_rest_reused(blog, crawl_settings):
    sources = [blog.base + "/"]
    first = run(sources, crawl_settings)
    blog.pages["/posts/two"] = blog.pages["/posts/two"].replace("river", "harbour")
    blog.hits.clear()

    second = run(sources, crawl_settings, previous=previous_of(first))
    assert blog.count(200, BLOG_POSTS) == 1 and blog.fetched("/posts/two")
    assert blog.count(304, BLOG_POSTS) == 2
    assert second.reused == 2
    [changed] = [d for d in second.documents if d.source_url.endswith("/posts/two")]
    assert "harbour" in changed.text


def test_a_new_post_in_the_feed_is_taken_and_old_ones_reused(blog, crawl_settings):
    first = run([blog.base + "/"], crawl_settings)
    blog.pages["/posts/four"] = blog.pages["/posts/one"].replace("One", "Four")
    blog.pages["/feed.xml"] = blog.pages["/feed.xml"].replace(
        "</channel>", f"<item><link>{blog.base}/posts/four</link></item></channel>"
    )
    second = run([blog.base + "/"], crawl_settings, previous=previous_of(first))
    assert len(second.documents) == 4 and second.reused == 3


def test_validators_are_not_sent_when_the_previous_documents_are_gone(blog, crawl_settings):
    """A state whose documents are not in the lake any more must not turn into no document."""
    first = run([blog.base + "/posts/one"], crawl_settings)
    [(url, state)] = first.states.items()
    blog.hits.clear()
    second = run(
        [blog.base + "/posts/one"], crawl_settings, previous={url: PreviousCrawl(state, {})}
    )
    assert blog.count(200, ("/posts/one",)) == 1 and len(second.documents) == 1


def test_other_settings_make_the_previous_state_unusable(blog, crawl_settings):
    first = run([blog.base + "/"], crawl_settings)
    blog.hits.clear()
    stricter = crawl_settings.model_copy(update={"max_pages": 2})
    second = run([blog.base + "/"], stricter, previous=previous_of(first))
    assert blog.count(304) == 0 and second.reused == 0 and len(second.documents) == 2


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "README.md").write_text("# Notes\n\nHow the tide tables were computed.\n")
    (root / "tide.py").write_text("def height(hour: int) -> float:\n    return hour * 0.5\n")
    (root / "passwords").symlink_to("/etc/passwd")  # refused, and said so on every crawl
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-qm", "first")
    return root


def test_a_repository_whose_head_did_not_move_is_not_cloned_again(repo, crawl_settings):
    first = run([str(repo)], crawl_settings, crawled_at=FIRST)
    assert len(first.documents) == 2
    # With its objects gone, the repository still answers ls-remote but cannot be cloned:
    # the second crawl succeeds only if it does not clone.
    objects = repo / ".git" / "objects"
    shutil.move(objects, repo / "objects-away")
    objects.mkdir()
    second = run([str(repo)], crawl_settings, crawled_at=LATER, previous=previous_of(first))
    assert [f.reason for f in second.failures] == [f.reason for f in first.failures]
    assert "outside the repository" in second.failures[0].reason
    assert second.reused == 2 and {d.crawled_at for d in second.documents} == {FIRST}

    shutil.rmtree(objects)
    shutil.move(repo / "objects-away", objects)
    (repo / "tide.py").write_text("def height(hour: int) -> float:\n    return hour * 0.6\n")
    git(repo, "commit", "-qam", "second")
    third = run([str(repo)], crawl_settings, crawled_at=LATER, previous=previous_of(second))
    assert third.reused == 0 and {d.crawled_at for d in third.documents} == {LATER}
    assert any("0.6" in d.text for d in third.documents)


def test_a_folder_rereads_only_files_whose_size_or_time_changed(tmp_path, crawl_settings):
    folder = tmp_path / "notes"
    folder.mkdir()
    for name in ("tides.md", "boats.md", "gulls.md"):
        (folder / name).write_text(f"# {name}\n\nA note on {name[:-3]} and the harbour.\n")
        os.utime(folder / name, (1_700_000_000, 1_700_000_000))  # written long before
    first = run([str(folder)], crawl_settings, crawled_at=FIRST)
    (folder / "boats.md").write_text("# boats\n\nThe boats are painted blue this year.\n")
    second = run([str(folder)], crawl_settings, crawled_at=LATER, previous=previous_of(first))
    assert second.reused == 2
    by_name = {Path(d.metadata["path"]).name: d for d in second.documents}
    assert by_name["boats.md"].crawled_at == LATER and "blue" in by_name["boats.md"].text
    assert by_name["tides.md"].crawled_at == FIRST


def test_refresh_can_be_turned_off(blog, crawl_settings):
    first = run([blog.base + "/@ada"], crawl_settings)
    blog.hits.clear()
    off = crawl_settings.model_copy(update={"conditional_fetching": False})
    run([blog.base + "/@ada"], off, previous=previous_of(first))
    assert blog.count(304) == 0 and blog.count(200, PROFILE_POSTS) == 2


def test_an_unchanged_index_behind_a_redirect_keeps_its_scope(blog, crawl_settings):
    """The replayed index is judged at the address the redirect led to, not the one given."""
    first = run([blog.base + "/old-manual/"], crawl_settings)
    assert len(first.documents) == 4
    blog.hits.clear()
    second = run([blog.base + "/old-manual/"], crawl_settings, previous=previous_of(first))
    assert blog.count(304, ("/manual/",)) == 1
    assert second.reused == 4 and len(second.documents) == 4


def test_a_file_edited_in_the_same_clock_tick_as_its_last_read_is_read_again(
    tmp_path, crawl_settings
):
    """Same size, same mtime, new text: trusted unchanged only if it was old when read."""
    folder = tmp_path / "notes"
    folder.mkdir()
    note = folder / "tide.md"
    note.write_text("# Tide\n\nHigh water at six.\n")
    before = note.stat()
    first = run([str(folder)], crawl_settings)
    note.write_text("# Tide\n\nHigh water at two.\n")
    os.utime(note, ns=(before.st_atime_ns, before.st_mtime_ns))
    second = run([str(folder)], crawl_settings, previous=previous_of(first))
    assert second.reused == 0 and "two" in second.documents[0].text


def test_a_last_modified_date_younger_than_a_minute_is_not_used_as_a_validator():
    """A page changed twice in one second keeps its date: only a settled date may validate."""
    served = "Wed, 01 Jan 2025 12:00:30 GMT"
    assert settled_last_modified("Wed, 01 Jan 2025 12:00:00 GMT", served) is None
    assert settled_last_modified("Wed, 01 Jan 2025 11:59:00 GMT", served) is not None
    assert settled_last_modified("not a date", served) is None
