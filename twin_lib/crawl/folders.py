"""Local folders of Markdown, text and HTML files (drafts, exported blogs, notes).

A file whose size and modification time are those of the last crawl is not read again: its
document from the last crawl is reused (rsync's rule). As in git, a file modified within
``_RACY_NS`` of being read is read again next time: a file system's clock is coarse, and
an edit in the same tick as the last read would keep both size and time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from twin_lib.crawl.context import CrawlContext, CrawlFailure, CrawlOutcome
from twin_lib.crawl.errors import CrawlError
from twin_lib.crawl.extraction import NoMainTextError, extract_main_text
from twin_lib.crawl.state import FileStamp
from twin_lib.crawl.text_files import (
    VENDORED_DIRS,
    link_verdict,
    read_regular_file,
    skip_reason,
)
from twin_lib.domain import Category, RawDocument

logger = logging.getLogger(__name__)

_RACY_NS = 2_000_000_000  # modified this close to being read: not trusted unchanged
TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".rst"})
HTML_SUFFIXES = frozenset({".html", ".htm"})


def crawl_folder(source: str, context: CrawlContext) -> CrawlOutcome:
    """Every supported file under the folder becomes one document (default category: article)."""
    root = Path(source).expanduser().resolve()
    if not root.is_dir():
        raise CrawlError(source, "not a directory; pass an existing folder")
    state = context.new_state(source)
    outcome = CrawlOutcome(state=state)
    for relative, linked_directory in walk_source(root):
        suffix = relative.suffix.lower()
        if not linked_directory and (
            suffix not in TEXT_SUFFIXES | HTML_SUFFIXES or skip_reason(relative)
        ):
            continue
        if linked_directory or (root / relative).is_symlink():
            verdict = link_verdict(root, relative)
            if verdict.refused:
                uri = (root / relative).as_uri()
                outcome.failures.append(CrawlFailure(source, uri, verdict.reason or ""))
            continue
        stamp = _stamp(root / relative)
        reused = _unchanged(relative, stamp, context)
        if reused is not None:
            outcome.documents.append(reused)
            outcome.reused += 1
            state.files[relative.as_posix()] = stamp.model_copy(
                update={"document_id": reused.document_id}
            )
            continue
        document, reason = _document(root, relative, source, context)
        if document is None:
            outcome.failures.append(CrawlFailure(source, (root / relative).as_uri(), reason))
        else:
            outcome.documents.append(document)
            state.files[relative.as_posix()] = stamp.model_copy(
                update={"document_id": document.document_id}
            )
    state.document_ids = [d.document_id for d in outcome.documents]
    logger.info(
        "folder %s: %d documents (%d unchanged, not read again), %d unreadable or refused",
        source,
        len(outcome.documents),
        outcome.reused,
        len(outcome.failures),
    )
    return outcome


def _stamp(path: Path) -> FileStamp:
    read_at_ns = time.time_ns()
    status = path.lstat()
    return FileStamp(size=status.st_size, mtime_ns=status.st_mtime_ns, read_at_ns=read_at_ns)


def _unchanged(
    relative: PurePosixPath, stamp: FileStamp, context: CrawlContext
) -> RawDocument | None:
    """Last crawl's document of this file if its size and modification time are unchanged."""
    previous = context.previous
    known = previous.state.files.get(relative.as_posix()) if previous else None
    if previous is None or known is None or known.document_id is None:
        return None
    if (known.size, known.mtime_ns) != (stamp.size, stamp.mtime_ns):
        return None
    if known.mtime_ns >= known.read_at_ns - _RACY_NS:
        return None
    documents = previous.reusable([known.document_id])
    return documents[0] if documents else None


def walk_source(root: Path) -> Iterator[tuple[PurePosixPath, bool]]:
    """(path relative to ``root``, is a link to a directory) for every entry below ``root``.

    Links to directories are never descended (they may lead anywhere, or loop); nested
    ``.git`` and vendored directories are pruned. Files come sorted so runs are reproducible.
    """
    for directory, subdirs, files in os.walk(root, followlinks=False):
        base = Path(directory)
        links = sorted(name for name in subdirs if (base / name).is_symlink())
        subdirs[:] = sorted(n for n in subdirs if n not in links and n not in VENDORED_DIRS)
        for name in links:
            yield PurePosixPath((base / name).relative_to(root).as_posix()), True
        for name in sorted(files):
            yield PurePosixPath((base / name).relative_to(root).as_posix()), False


def _document(
    root: Path, relative: PurePosixPath, source: str, context: CrawlContext
) -> tuple[RawDocument | None, str]:
    uri = (root / relative).as_uri()
    read = read_regular_file(root, relative, context.settings.max_file_bytes)
    if read.text is None:
        return None, read.reason or "unreadable"
    text, title = read.text, _title_from_text(read.text, fallback=relative.stem)
    if relative.suffix.lower() in HTML_SUFFIXES:
        try:
            extracted = extract_main_text(read.text, url=uri)
        except NoMainTextError as exc:
            return None, exc.reason
        text, title = extracted.text, extracted.title or relative.stem
    document = RawDocument.create(
        text=text,
        title=title,
        author=context.author,
        source_url=uri,
        origin=source,
        category=context.category or Category.ARTICLE,
        metadata={"path": relative.as_posix()},
        crawled_at=context.crawled_at,
    )
    return document, ""


def _title_from_text(text: str, fallback: str) -> str:
    """A leading Markdown heading is the title; otherwise the file name is."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped:
            return stripped.lstrip("#").strip() if stripped.startswith("#") else fallback
    return fallback
