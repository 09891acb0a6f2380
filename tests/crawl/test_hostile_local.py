"""Folders, repositories and export archives written to attack the crawler.

Each case was verified against the previous crawler: it read ``/etc/passwd`` through a
link, crashed the whole run with ``IsADirectoryError`` on a link to a directory or a
submodule, or read every archive member whole into memory.
"""

from __future__ import annotations

import io
import os
import socket
import stat
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.crawl.sources_on_disk import git, write_linkedin_export
from twin_lib.crawl import Source, crawl_sources
from twin_lib.crawl.context import CrawlOutcome
from twin_lib.crawl.git_repos import git_config
from twin_lib.crawl.sources import CRAWLERS, CrawlerSpec

pytestmark = pytest.mark.timeout(30)

ESSAY = "# Essay\n\nWords the author wrote, and nothing else.\n"


def plant_hostile_files(root: Path) -> None:
    """Links out of the source, a device, a link to a directory, an alias inside."""
    (root / "notes.md").symlink_to("/etc/passwd")
    (root / "zero.md").symlink_to("/dev/zero")
    (root / "etc-link").symlink_to("/etc", target_is_directory=True)
    (root / "docs").mkdir()
    (root / "docs" / "guide.md").write_text("# Guide\n\nHow to use the project, by hand.\n")
    (root / "docs-link").symlink_to("docs", target_is_directory=True)
    (root / "alias.md").symlink_to("essay.md")
    (root / "essay.md").write_text(ESSAY)


def failures_by_name(report) -> dict[str, str]:
    return {f.source_url.rsplit("/", 1)[-1].rsplit("#", 1)[-1]: f.reason for f in report.failures}


def assert_nothing_from_outside(report) -> None:
    assert all("root:" not in d.text for d in report.documents)
    assert all("\x00" not in d.text for d in report.documents)


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    """A listening socket file, so the folder holds every kind of special file."""
    path = tmp_path / "folder" / "socket.md"
    path.parent.mkdir()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    try:
        yield path
    finally:
        server.close()


def test_folder_reads_regular_files_inside_only(tmp_path, unix_socket, crawl_settings):
    folder = unix_socket.parent
    plant_hostile_files(folder)
    os.mkfifo(folder / "pipe.md")
    (folder / "nested").mkdir()
    git(folder / "nested", "init", "-q")
    (folder / "nested" / ".git" / "description.md").write_text("git internals\n")
    report = crawl_sources([Source(url=str(folder))], author="Ada", settings=crawl_settings)
    assert_nothing_from_outside(report)
    assert sorted(d.metadata["path"] for d in report.documents) == ["docs/guide.md", "essay.md"]
    reasons = failures_by_name(report)
    assert set(reasons) == {"notes.md", "zero.md", "etc-link", "pipe.md", "socket.md"}
    assert "link to /etc/passwd, outside the source" in reasons["notes.md"]
    assert "link to /dev/zero, outside the source" in reasons["zero.md"]
    assert "link to /etc, outside the source" in reasons["etc-link"]
    assert reasons["pipe.md"] == "named pipe (FIFO), not a regular file"
    assert reasons["socket.md"] == "socket, not a regular file"
    assert report.complete_origins == [str(folder)]


def test_folder_reads_at_most_the_cap(tmp_path, crawl_settings):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "huge.md").write_text("word " * 100_000)
    small = crawl_settings.model_copy(update={"max_file_bytes": 1000})
    report = crawl_sources([Source(url=str(folder))], author="Ada", settings=small)
    assert report.failures[0].reason == "file larger than the 1000-byte cap"


@pytest.fixture
def hostile_repo(tmp_path: Path) -> Path:
    """A repository committing links out, a link to a directory, a submodule, a nested repo."""
    library = tmp_path / "library"
    library.mkdir()
    (library / "lib.md").write_text("# Library\n\nSomeone else's words.\n")
    git(library, "init", "-q", "-b", "main")
    git(library, "add", ".")
    git(library, "commit", "-q", "-m", "library")
    root = tmp_path / "hostile"
    root.mkdir()
    plant_hostile_files(root)
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library), "sub")
    nested = root / "nested"
    nested.mkdir()
    (nested / "inner.md").write_text("# Inner\n\nA repository inside the repository.\n")
    git(nested, "init", "-q", "-b", "main")
    git(nested, "add", ".")
    git(nested, "commit", "-q", "-m", "inner")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "hostile")
    return root


def test_repository_links_submodules_and_nested_repos_are_refused(hostile_repo, crawl_settings):
    report = crawl_sources([Source(url=str(hostile_repo))], author="Ada", settings=crawl_settings)
    assert_nothing_from_outside(report)
    paths = sorted(d.metadata["path"] for d in report.documents)
    assert paths == [".gitmodules", "docs/guide.md", "essay.md"]
    reasons = failures_by_name(report)
    assert set(reasons) == {"notes.md", "zero.md", "etc-link", "sub", "nested"}
    assert reasons["notes.md"] == "symbolic link to /etc/passwd, outside the repository"
    assert reasons["zero.md"] == "symbolic link to /dev/zero, outside the repository"
    assert reasons["etc-link"] == "symbolic link to /etc, outside the repository"
    assert reasons["sub"].startswith("submodule or nested repository")
    assert reasons["nested"].startswith("submodule or nested repository")
    assert report.complete_origins == [str(hostile_repo)]


def test_relative_links_climbing_out_of_a_repository_are_refused(tmp_path, crawl_settings):
    root = tmp_path / "climb"
    (root / "a").mkdir(parents=True)
    (root / "a" / "up.md").symlink_to("../../../etc/passwd")
    (root / "a" / "ok.md").write_text("# Ok\n\nFine text.\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "climb")
    report = crawl_sources([Source(url=str(root))], author="Ada", settings=crawl_settings)
    assert [d.metadata["path"] for d in report.documents] == ["a/ok.md"]
    assert report.failures[0].reason.endswith("etc/passwd, outside the repository")


def test_blobs_over_the_cap_stay_on_the_server(tmp_path, crawl_settings, caplog):
    root = tmp_path / "big"
    root.mkdir()
    (root / "small.md").write_text("# Small\n\nShort and sweet.\n")
    (root / "big.md").write_text("word " * 100_000)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "uploadpack.allowFilter", "true")  # as forges allow partial clones
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "big")
    with caplog.at_level("DEBUG", logger="twin_lib.crawl.git_repos"):
        report = crawl_sources([Source(url=str(root))], author="Ada", settings=crawl_settings)
    assert [d.metadata["path"] for d in report.documents] == ["small.md"]
    assert "big.md" in caplog.text
    assert "left on the server by the clone filter" in caplog.text


def test_clone_runs_no_hooks(tmp_path, crawl_settings, monkeypatch):
    """Hooks from the user's git template (the only hooks a clone may inherit) never run."""
    repo = tmp_path / "plain"
    repo.mkdir()
    (repo / "essay.md").write_text(ESSAY)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "plain")
    marker = tmp_path / "hook-ran"
    hooks = tmp_path / "template" / "hooks"
    hooks.mkdir(parents=True)
    for name in ("post-checkout", "reference-transaction", "post-index-change"):
        (hooks / name).write_text(f"#!/bin/sh\ntouch {marker}\n")
        (hooks / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("GIT_TEMPLATE_DIR", str(tmp_path / "template"))
    report = crawl_sources([Source(url=str(repo))], author="Ada", settings=crawl_settings)
    assert report.documents
    assert not marker.exists()


def test_remote_clones_allow_no_local_or_command_transports():
    remote = " ".join(git_config(local=False, allow_private=False))
    assert "protocol.file.allow=never" in remote
    assert "protocol.ext.allow=never" in remote
    assert "core.hooksPath=/dev/null" in remote
    assert "protocol.file.allow=always" not in remote
    assert "protocol.file.allow=always" in " ".join(git_config(local=True, allow_private=False))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ext::sh -c touch% {marker} x.git", "scheme 'ext' is not allowed"),
        ("file://{marker}/x.git", "file:// URLs are not cloned; pass the local path instead"),
    ],
)
def test_command_and_file_transport_sources_are_refused(tmp_path, crawl_settings, url, reason):
    marker = tmp_path / "pwned"
    source = url.format(marker=marker)
    report = crawl_sources([Source(url=source)], author="Ada", settings=crawl_settings)
    assert reason in report.failures[0].reason
    assert not marker.exists()


def zip_with(path: Path, members: dict[str, bytes], base: Path | None = None) -> Path:
    """A LinkedIn export (``base``, if given) with extra members, deflated."""
    source = write_linkedin_export(base) if base else None
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        if source is not None:
            with zipfile.ZipFile(source) as original:
                for info in original.infolist():
                    archive.writestr(info.filename, original.read(info))
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_decompression_bomb_member_is_refused(tmp_path, crawl_settings):
    bomb = b"\0" * 20_000_000
    archive = zip_with(tmp_path / "bomb.zip", {"Articles/Articles/bomb.html": bomb}, tmp_path / "a")
    report = crawl_sources([Source(url=str(archive))], author="Ada", settings=crawl_settings)
    [failure] = report.failures
    assert failure.source_url.endswith("#Articles/Articles/bomb.html")
    assert "decompression bomb" in failure.reason
    assert len(report.documents) == 3


def test_members_over_the_cap_and_archives_over_the_total_are_refused(tmp_path, crawl_settings):
    article = b"<html><body><p>" + b"A long article, written at length. " * 200 + b"</p></body>"
    members = {f"Articles/Articles/long-{n}.html": article for n in range(3)}
    archive = zip_with(tmp_path / "long.zip", members, tmp_path / "a")
    capped = crawl_settings.model_copy(update={"max_archive_member_bytes": 5000})
    report = crawl_sources([Source(url=str(archive))], author="Ada", settings=capped)
    assert {f.reason.split(";")[0] for f in report.failures} == {
        "member larger than the 5000-byte cap"
    }
    assert len(report.failures) == 3
    limited = crawl_settings.model_copy(update={"max_archive_total_bytes": 10_000})
    report = crawl_sources([Source(url=str(archive))], author="Ada", settings=limited)
    assert report.documents == []
    assert "decompression bomb" in report.failures[0].reason


@pytest.mark.parametrize("name", ["../../escape/Articles/x.html", "/abs/Articles/x.html"])
def test_path_traversal_member_names_are_refused(tmp_path, crawl_settings, name):
    page = b"<html><body><p>" + b"Text that claims a path outside the archive. " * 10 + b"</p>"
    archive = zip_with(tmp_path / "trav.zip", {name: page}, tmp_path / "a")
    report = crawl_sources([Source(url=str(archive))], author="Ada", settings=crawl_settings)
    [failure] = report.failures
    assert failure.source_url.endswith(f"#{name}")
    assert failure.reason.startswith("unsafe member name")


def test_only_posts_and_articles_are_read_from_the_archive(tmp_path, crawl_settings):
    """A corrupt member the crawl does not need (messages, contacts) does not fail it."""
    archive = zip_with(tmp_path / "x.zip", {"messages.csv": b"private " * 1000}, tmp_path / "a")
    data = bytearray(archive.read_bytes())
    start = data.index(b"messages.csv", 0) + len("messages.csv")  # first: the local header
    data[start + 10 : start + 20] = b"\xff" * 10  # corrupt its compressed bytes
    archive.write_bytes(bytes(data))
    with (
        zipfile.ZipFile(io.BytesIO(bytes(data))) as opened,
        pytest.raises((zipfile.BadZipFile, zlib.error)),
    ):
        opened.read("messages.csv")
    report = crawl_sources([Source(url=str(archive))], author="Ada", settings=crawl_settings)
    assert not report.failures
    assert len(report.documents) == 3


def test_links_in_an_extracted_export_folder_are_refused(tmp_path, crawl_settings):
    archive = write_linkedin_export(tmp_path / "export.zip")
    folder = tmp_path / "export"
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(folder)
    (folder / "Articles" / "Articles" / "stolen.html").symlink_to("/etc/passwd")
    report = crawl_sources([Source(url=str(folder))], author="Ada", settings=crawl_settings)
    assert_nothing_from_outside(report)
    [failure] = report.failures
    assert "link to /etc/passwd, outside the source" in failure.reason
    assert len(report.documents) == 3


def _explode(source: str, _context: object) -> CrawlOutcome:
    raise RuntimeError(f"bug while crawling {source}")


def test_an_unexpected_error_fails_only_its_source(tmp_path, crawl_settings, monkeypatch):
    """A crawler with a bug (here one that raises) must not cost the run its other sources."""
    monkeypatch.setitem(CRAWLERS, "exploding", CrawlerSpec(lambda s: s == "boom:x", _explode))
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "essay.md").write_text(ESSAY)
    sources = [Source(url="boom:x"), Source(url=str(folder))]
    report = crawl_sources(sources, author="Ada", settings=crawl_settings)
    assert [d.metadata["path"] for d in report.documents] == ["essay.md"]
    [failure] = report.failures
    assert failure.source_url == "boom:x"
    assert failure.reason == "unexpected RuntimeError: bug while crawling boom:x"
    assert report.crawled_origins == [str(folder)]
