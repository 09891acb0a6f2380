"""Git repositories, remote or local, cloned shallow and walked file by file.

Each tracked text file becomes one repository document, so that an edit to one file
replaces only that file's chunks and a deleted file's chunks are removed.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from twin_lib.crawl.context import CrawlContext, CrawlOutcome
from twin_lib.crawl.errors import CrawlError
from twin_lib.crawl.safety import GIT_SCHEMES, check_url
from twin_lib.crawl.text_files import read_text, skip_reason
from twin_lib.domain import Category, RawDocument

logger = logging.getLogger(__name__)

_KNOWN_FORGES = frozenset({"github.com", "gitlab.com", "bitbucket.org", "codeberg.org"})


def is_git_source(source: str) -> bool:
    """A git URL, a forge repository URL, or a local directory that is a git work tree."""
    parts = urlsplit(source)
    if parts.scheme == "git" or source.endswith(".git"):
        return True
    if parts.scheme in ("http", "https"):
        segments = [s for s in parts.path.split("/") if s]
        return (parts.hostname or "") in _KNOWN_FORGES and len(segments) == 2
    local = Path(source).expanduser()
    return local.is_dir() and (local / ".git").exists()


def crawl_repository(source: str, context: CrawlContext) -> CrawlOutcome:
    """Shallow-clone the repository into a temporary directory and read its text files."""
    local = Path(source).expanduser()
    if local.is_dir():
        clone_url, base_url = local.resolve().as_uri(), local.resolve().as_uri()
    else:
        check_url(
            source, schemes=GIT_SCHEMES, allow_private=context.settings.allow_private_addresses
        )
        clone_url, base_url = source, source.removesuffix(".git")
    with tempfile.TemporaryDirectory(prefix="twin-clone-") as workdir:
        checkout = Path(workdir) / "repo"
        _shallow_clone(source, clone_url, checkout, context)
        outcome = CrawlOutcome()
        skipped = 0
        for relative in _tracked_files(source, checkout, context):
            if skip_reason(relative):
                skipped += 1
                continue
            text, reason = read_text(checkout / relative, context.settings.max_file_bytes)
            if text is None:
                logger.debug("skipping %s in %s: %s", relative, source, reason)
                skipped += 1
                continue
            outcome.documents.append(
                RawDocument.create(
                    text=text,
                    title=str(relative),
                    author=context.author,
                    source_url=f"{base_url}#{relative}",
                    origin=source,
                    category=context.category or Category.REPOSITORY,
                    metadata={"path": str(relative), "repository": base_url},
                    crawled_at=context.crawled_at,
                )
            )
    logger.info("repository %s: %d files read, %d skipped", source, len(outcome.documents), skipped)
    return outcome


def _git(args: list[str], source: str, context: CrawlContext, cwd: Path | None = None) -> str:
    protocols = ["http", "https", "git", "file"]
    config: list[str] = ["-c", "protocol.allow=never"]
    for protocol in protocols:
        config += ["-c", f"protocol.{protocol}.allow=always"]
    if not context.settings.allow_private_addresses:
        config += ["-c", "http.followRedirects=false"]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    try:
        completed = subprocess.run(
            ["git", *config, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=context.settings.git_timeout_s,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CrawlError(source, "git is not installed; install git to crawl repositories") from exc
    except subprocess.TimeoutExpired as exc:
        raise CrawlError(source, f"git timed out after {context.settings.git_timeout_s}s") from exc
    if completed.returncode != 0:
        message = completed.stderr.strip().splitlines()[-1:] or ["unknown error"]
        raise CrawlError(source, f"git {args[0]} failed: {message[0]}")
    return completed.stdout


def _shallow_clone(source: str, url: str, checkout: Path, context: CrawlContext) -> None:
    _git(
        ["clone", "--depth", "1", "--single-branch", "--no-tags", "--quiet", url, str(checkout)],
        source,
        context,
    )


def _tracked_files(source: str, checkout: Path, context: CrawlContext) -> list[PurePosixPath]:
    listing = _git(["ls-files", "-z"], source, context, cwd=checkout)
    return [PurePosixPath(name) for name in listing.split("\0") if name]
