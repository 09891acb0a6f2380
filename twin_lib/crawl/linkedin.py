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
import zlib
from pathlib import Path, PurePosixPath

from twin_lib.crawl.context import CrawlContext, CrawlFailure, CrawlOutcome
from twin_lib.crawl.errors import CrawlError
from twin_lib.crawl.extraction import NoMainTextError, decode_html, extract_main_text
from twin_lib.crawl.folders import walk_source
from twin_lib.crawl.text_files import FileRead, read_regular_bytes
from twin_lib.domain import Category, RawDocument
from twin_lib.settings import CrawlSettings

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
    archive_uri = path.as_uri()
    outcome = CrawlOutcome()
    files = _read_export(path, source, context.settings, outcome)
    shares = sorted((n for n in files if PurePosixPath(n).name == SHARES_FILE), key=len)
    if not shares:
        raise CrawlError(source, f"no readable {SHARES_FILE} in the export; is it complete?")
    outcome.documents.extend(_posts(files[shares[0]], archive_uri, source, context))
    for name, body in sorted(files.items()):
        if not _is_article(name):
            continue
        try:
            extracted = extract_main_text(decode_html(body, None))
        except NoMainTextError as exc:
            outcome.failures.append(CrawlFailure(source, f"{archive_uri}#{name}", exc.reason))
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


def _is_article(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return "Articles" in parts[:-1] and name.lower().endswith((".html", ".htm"))


def _is_needed(name: str) -> bool:
    """Only posts and articles are read; the rest of the export (messages, contacts) is not."""
    return PurePosixPath(name).name == SHARES_FILE or _is_article(name)


def _read_export(
    path: Path, source: str, settings: CrawlSettings, outcome: CrawlOutcome
) -> dict[str, bytes]:
    """The needed members' bytes; members refused for safety are recorded in ``outcome``."""
    if path.is_dir():
        return _read_folder(path, source, settings, outcome)
    try:
        with zipfile.ZipFile(path) as archive:
            return _read_zip(archive, path.as_uri(), source, settings, outcome)
    except zipfile.BadZipFile as exc:
        raise CrawlError(source, f"not a readable zip archive ({exc}); download it again") from exc


def _read_folder(
    root: Path, source: str, settings: CrawlSettings, outcome: CrawlOutcome
) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    cap = settings.max_archive_member_bytes
    for relative, linked_directory in walk_source(root):
        if linked_directory or not _is_needed(relative.as_posix()):
            continue
        data = read_regular_bytes(root, relative, cap)
        reason = data.reason if isinstance(data, FileRead) else _oversized(len(data), cap)
        if isinstance(data, FileRead) or reason is not None:
            failure = reason or "unreadable"
            outcome.failures.append(CrawlFailure(source, (root / relative).as_uri(), failure))
            continue
        files[relative.as_posix()] = data
    return files


def _read_zip(
    archive: zipfile.ZipFile,
    archive_uri: str,
    source: str,
    settings: CrawlSettings,
    outcome: CrawlOutcome,
) -> dict[str, bytes]:
    """Each needed member read bounded, never trusting the sizes the archive declares."""
    files: dict[str, bytes] = {}
    total = 0
    for info in archive.infolist():
        if info.is_dir() or not _is_needed(info.filename):
            continue
        reason = _member_refusal(info, settings)
        data = b""
        if reason is None:
            data, reason = _read_member(archive, info, settings.max_archive_member_bytes)
        if reason is not None:
            outcome.failures.append(CrawlFailure(source, f"{archive_uri}#{info.filename}", reason))
            continue
        total += len(data)
        if total > settings.max_archive_total_bytes:
            raise CrawlError(
                source,
                f"posts and articles expand to more than {settings.max_archive_total_bytes} "
                "bytes; refusing the archive as a decompression bomb (raise "
                "features.crawl.max_archive_total_bytes if it is genuine)",
            )
        files[info.filename] = data
    return files


def _member_refusal(info: zipfile.ZipInfo, settings: CrawlSettings) -> str | None:
    """Why a member must not be read at all, judged from its entry in the directory."""
    name = PurePosixPath(info.filename)
    if name.is_absolute() or ".." in name.parts or "\\" in info.filename or ":" in name.parts[0]:
        return "unsafe member name (absolute or climbing out with ..); not read"
    if info.file_size > settings.max_archive_member_bytes:
        return _oversized(info.file_size, settings.max_archive_member_bytes)
    ratio = info.file_size / max(info.compress_size, 1)
    if ratio > settings.max_compression_ratio:
        return (
            f"compressed {ratio:.0f}:1, beyond the {settings.max_compression_ratio:.0f}:1 "
            "allowed; refused as a decompression bomb"
        )
    return None


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int
) -> tuple[bytes, str | None]:
    try:
        with archive.open(info) as member:
            data = member.read(cap + 1)
    except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError) as exc:
        return b"", f"unreadable member ({exc})"
    return data, _oversized(len(data), cap)


def _oversized(size: int, cap: int) -> str | None:
    if size <= cap:
        return None
    return (
        f"member larger than the {cap}-byte cap; not read "
        "(raise features.crawl.max_archive_member_bytes if it is genuine)"
    )


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
