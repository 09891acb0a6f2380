"""Local folders of Markdown, text and HTML files (drafts, exported blogs, notes)."""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

from twin_lib.crawl.context import CrawlContext, CrawlFailure, CrawlOutcome
from twin_lib.crawl.errors import CrawlError
from twin_lib.crawl.extraction import extract_main_text
from twin_lib.crawl.text_files import read_text, skip_reason
from twin_lib.domain import Category, RawDocument

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".rst"})
HTML_SUFFIXES = frozenset({".html", ".htm"})


def crawl_folder(source: str, context: CrawlContext) -> CrawlOutcome:
    """Every supported file under the folder becomes one document (default category: article)."""
    root = Path(source).expanduser().resolve()
    if not root.is_dir():
        raise CrawlError(source, "not a directory; pass an existing folder")
    outcome = CrawlOutcome()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        suffix = path.suffix.lower()
        if suffix not in TEXT_SUFFIXES | HTML_SUFFIXES or skip_reason(_posix(relative)):
            continue
        text, reason = read_text(path, context.settings.max_file_bytes)
        title = _title_from_text(text or "", fallback=path.stem)
        if text is not None and suffix in HTML_SUFFIXES:
            extracted = extract_main_text(text, url=path.as_uri())
            text, reason = (extracted.text, None) if extracted else (None, "no main text in HTML")
            title = (extracted.title or path.stem) if extracted else title
        if text is None:
            outcome.failures.append(CrawlFailure(source, path.as_uri(), reason or "unreadable"))
            continue
        outcome.documents.append(
            RawDocument.create(
                text=text,
                title=title,
                author=context.author,
                source_url=path.as_uri(),
                origin=source,
                category=context.category or Category.ARTICLE,
                metadata={"path": relative.as_posix()},
                crawled_at=context.crawled_at,
            )
        )
    logger.info(
        "folder %s: %d documents, %d unreadable",
        source,
        len(outcome.documents),
        len(outcome.failures),
    )
    return outcome


def _posix(relative: Path) -> PurePosixPath:
    return PurePosixPath(relative.as_posix())


def _title_from_text(text: str, fallback: str) -> str:
    """A leading Markdown heading is the title; otherwise the file name is."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped:
            return stripped.lstrip("#").strip() if stripped.startswith("#") else fallback
    return fallback
