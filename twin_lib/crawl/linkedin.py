"""LinkedIn's official data-export archive: posts (Shares.csv) and articles (Articles/*.html).

Scraping LinkedIn is against its terms and the public scrapers break often; the export
("Settings > Data privacy > Get a copy of your data") is the supported way to get one's
own writing out. The archive may be passed as the .zip or as its extracted folder.
"""

from __future__ import annotations

import csv
import io
import logging
import zipfile
from pathlib import Path, PurePosixPath

from twin_lib.crawl.context import CrawlContext, CrawlFailure, CrawlOutcome
from twin_lib.crawl.errors import CrawlError
from twin_lib.crawl.extraction import decode_html, extract_main_text
from twin_lib.domain import Category, RawDocument

logger = logging.getLogger(__name__)

SHARES_FILE = "Shares.csv"


def is_linkedin_export(source: str) -> bool:
    """A zip or folder that contains the export's Shares.csv."""
    path = Path(source).expanduser()
    if path.is_dir():
        return (path / SHARES_FILE).is_file()
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return any(PurePosixPath(n).name == SHARES_FILE for n in archive.namelist())
    return False


def crawl_linkedin_export(source: str, context: CrawlContext) -> CrawlOutcome:
    """Posts become ``post`` documents, long-form articles ``article`` documents."""
    path = Path(source).expanduser().resolve()
    files = _read_archive(path)
    shares = [body for name, body in files.items() if PurePosixPath(name).name == SHARES_FILE]
    if not shares:
        raise CrawlError(source, f"no {SHARES_FILE} in the archive; is this a LinkedIn export?")
    archive_uri = path.as_uri()
    outcome = CrawlOutcome()
    outcome.documents.extend(_posts(shares[0], archive_uri, source, context))
    for name, body in sorted(files.items()):
        parts = PurePosixPath(name).parts
        if "Articles" in parts[:-1] and name.lower().endswith((".html", ".htm")):
            extracted = extract_main_text(decode_html(body, None))
            if extracted is None:
                outcome.failures.append(
                    CrawlFailure(source, f"{archive_uri}#{name}", "no article text in the HTML")
                )
                continue
            outcome.documents.append(
                RawDocument.create(
                    text=extracted.text,
                    title=extracted.title or PurePosixPath(name).stem,
                    author=context.author,
                    source_url=extracted.url or f"{archive_uri}#{name}",
                    origin=source,
                    category=Category.ARTICLE,
                    crawled_at=context.crawled_at,
                )
            )
    logger.info("LinkedIn export %s: %d documents", source, len(outcome.documents))
    return outcome


def _read_archive(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        return {
            p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()
        }
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}


def _posts(body: bytes, archive_uri: str, source: str, context: CrawlContext) -> list[RawDocument]:
    reader = csv.DictReader(io.StringIO(body.decode("utf-8-sig", errors="replace")))
    documents = []
    for row_number, row in enumerate(reader, start=2):
        commentary = (row.get("ShareCommentary") or "").strip()
        if not commentary:
            continue  # a re-share without own words carries none of the author's writing
        link = (row.get("ShareLink") or "").strip() or f"{archive_uri}#{SHARES_FILE}:{row_number}"
        metadata = {k: v for k in ("Date", "SharedUrl", "Visibility") if (v := row.get(k))}
        documents.append(
            RawDocument.create(
                text=commentary,
                author=context.author,
                source_url=link,
                origin=source,
                category=Category.POST,
                metadata=metadata,
                crawled_at=context.crawled_at,
            )
        )
    return documents
