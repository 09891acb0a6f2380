"""Git repositories, remote or local, cloned shallow and read blob by blob.

Each tracked text file becomes one repository document, so that an edit to one file
replaces only that file's chunks and a deleted file's chunks are removed. Before cloning,
``git ls-remote`` asks for the head commit: the same commit as the last crawl means the
same files, so the last crawl's documents are reused and nothing is cloned.
"""

from __future__ import annotations

import logging
import os
import posixpath
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from twin_lib.crawl.context import CrawlContext, CrawlFailure, CrawlOutcome
from twin_lib.crawl.errors import CrawlError
from twin_lib.crawl.safety import GIT_SCHEMES, check_url
from twin_lib.crawl.text_files import FileRead, skip_reason, text_from_bytes
from twin_lib.domain import Category, RawDocument

logger = logging.getLogger(__name__)

_KNOWN_FORGES = frozenset({"github.com", "gitlab.com", "bitbucket.org", "codeberg.org"})
_SYMLINK = "120000"
_GITLINK = "160000"  # a submodule or a nested repository: a commit of another repository
_READABLE_MODES = frozenset({"100644", "100755", _SYMLINK})


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


@dataclass(frozen=True)
class TreeEntry:
    """One path of the commit's tree, as ``git ls-tree`` lists it."""

    mode: str
    oid: str
    path: PurePosixPath


def crawl_repository(source: str, context: CrawlContext) -> CrawlOutcome:
    """Clone the repository's last commit without a work tree and read its text blobs.

    Nothing is checked out, so no link, hook or filter of the repository ever touches the
    file system: every file is read from git's object store, links are judged from their
    target path alone, and blobs over the cap are not even downloaded.
    """
    local = Path(source).expanduser()
    if local.is_dir():
        clone_url = base_url = local.resolve().as_uri()
    else:
        if urlsplit(source).scheme == "file":
            raise CrawlError(source, "file:// URLs are not cloned; pass the local path instead")
        check_url(
            source, schemes=GIT_SCHEMES, allow_private=context.settings.allow_private_addresses
        )
        clone_url, base_url = source, source.removesuffix(".git")
    state = context.new_state(source)
    outcome = CrawlOutcome(state=state)
    head = _remote_head(source, clone_url, context, local=local.is_dir())
    if _reuse_unchanged(source, head, outcome, context):
        return outcome
    with tempfile.TemporaryDirectory(prefix="twin-clone-") as workdir:
        repo = Path(workdir) / "repo.git"
        _clone(source, clone_url, repo, context, local=local.is_dir())
        state.head = _git(["rev-parse", "HEAD"], source, context, repo=repo).decode().strip()
        entries = _tree(source, repo, context)
        wanted = [e for e in entries if e.mode in _READABLE_MODES and not skip_reason(e.path)]
        blobs, filtered = _read_blobs(source, repo, [e.oid for e in wanted], context)
        skipped = len(entries) - len(wanted)
        for entry in entries:
            if entry.mode == _GITLINK:
                reason = "submodule or nested repository; not crawled (add it as a source)"
                outcome.failures.append(CrawlFailure(source, f"{base_url}#{entry.path}", reason))
        for entry in wanted:
            read = _entry_text(entry, blobs, filtered, context.settings.max_file_bytes)
            if read.text is None:
                skipped += 1
                logger.debug("skipping %s in %s: %s", entry.path, source, read.reason)
                if read.refused:
                    url = f"{base_url}#{entry.path}"
                    outcome.failures.append(CrawlFailure(source, url, read.reason or ""))
                continue
            outcome.documents.append(
                RawDocument.create(
                    text=read.text,
                    title=str(entry.path),
                    author=context.author,
                    source_url=f"{base_url}#{entry.path}",
                    origin=source,
                    category=context.category or Category.REPOSITORY,
                    metadata={"path": str(entry.path), "repository": base_url},
                    crawled_at=context.crawled_at,
                )
            )
    state.document_ids = [d.document_id for d in outcome.documents]
    state.failures = [(f.source_url, f.reason) for f in outcome.failures]
    logger.info("repository %s: %d files read, %d skipped", source, len(outcome.documents), skipped)
    return outcome


def _remote_head(source: str, url: str, context: CrawlContext, *, local: bool) -> str | None:
    """The commit the remote's HEAD points at, or None when refresh is off or no head is known."""
    if context.previous is None or context.previous.state.head is None:
        return None
    listing = _git(["ls-remote", "--", url, "HEAD"], source, context, local=local).decode()
    return listing.split()[0] if listing.strip() else None


def _reuse_unchanged(
    source: str, head: str | None, outcome: CrawlOutcome, context: CrawlContext
) -> bool:
    """Hand back the last crawl's documents when the head commit has not moved."""
    previous = context.previous
    if head is None or previous is None or previous.state.head != head:
        return False
    documents = previous.reusable(previous.state.document_ids)
    if documents is None:
        return False
    outcome.documents.extend(documents)
    outcome.reused = len(documents)
    outcome.state = previous.state.model_copy()
    outcome.failures = [
        CrawlFailure(source, url, reason) for url, reason in previous.state.failures
    ]
    logger.info(
        "repository %s: head %s unchanged; %d files reused", source, head[:12], len(documents)
    )
    return True


def _entry_text(
    entry: TreeEntry, blobs: dict[str, bytes], filtered: set[str], max_bytes: int
) -> FileRead:
    if entry.oid in filtered:
        return FileRead(
            reason=f"over the {max_bytes}-byte cap; left on the server by the clone filter"
        )
    blob = blobs.get(entry.oid)
    if blob is None:
        return FileRead(reason=f"larger than the {max_bytes}-byte cap; not read")
    if entry.mode == _SYMLINK:
        return _link_verdict(entry.path, blob)
    return text_from_bytes(blob, max_bytes)


def _link_verdict(path: PurePosixPath, target: bytes) -> FileRead:
    """A link is never followed: inside the repository it is an alias, else it is refused."""
    text = target.decode("utf-8", errors="replace")
    joined = posixpath.normpath(posixpath.join(str(path.parent), text))
    if text.startswith("/") or joined == ".." or joined.startswith("../"):
        return FileRead(reason=f"symbolic link to {text}, outside the repository", refused=True)
    return FileRead(reason=f"symbolic link to {joined}, crawled under its own path")


def git_config(*, local: bool, allow_private: bool) -> list[str]:
    """``-c`` options that keep a clone from running code or reaching what it should not.

    No transport but http(s) and git, plus ``file`` only for a local repository the user
    named (a remote's submodule or alternate must not read this machine's repositories);
    ``ext::`` never; no hooks; no credential prompts; no redirects to private addresses.
    """
    protocols = ["http", "https", "git", *(["file"] if local else [])]
    config = ["protocol.allow=never", "protocol.ext.allow=never", "core.hooksPath=/dev/null"]
    config += [f"protocol.{protocol}.allow=always" for protocol in protocols]
    if not local:
        config.append("protocol.file.allow=never")
    if not allow_private:
        config.append("http.followRedirects=false")
    return [option for setting in config for option in ("-c", setting)]


def _git(
    args: list[str],
    source: str,
    context: CrawlContext,
    *,
    repo: Path | None = None,
    local: bool = False,
    stdin: bytes | None = None,
) -> bytes:
    config = git_config(local=local, allow_private=context.settings.allow_private_addresses)
    location = ["--git-dir", str(repo)] if repo is not None else []
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    try:
        completed = subprocess.run(
            ["git", *config, *location, *args],
            input=stdin,
            env=env,
            capture_output=True,
            timeout=context.settings.git_timeout_s,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CrawlError(source, "git is not installed; install git to crawl repositories") from exc
    except subprocess.TimeoutExpired as exc:
        raise CrawlError(source, f"git timed out after {context.settings.git_timeout_s}s") from exc
    if completed.returncode != 0:
        stderr = completed.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise CrawlError(source, f"git {args[0]} failed: {(stderr or ['unknown error'])[-1]}")
    return completed.stdout


def _clone(source: str, url: str, repo: Path, context: CrawlContext, *, local: bool) -> None:
    """A bare, shallow clone of the default branch; blobs over the cap stay on the server."""
    limit = context.settings.max_file_bytes
    args = ["clone", "--bare", "--depth", "1", "--single-branch", "--no-tags", "--quiet"]
    args += [f"--filter=blob:limit={limit}", "--", url, str(repo)]
    _git(args, source, context, local=local)


def _tree(source: str, repo: Path, context: CrawlContext) -> list[TreeEntry]:
    listing = _git(["ls-tree", "-r", "-z", "--full-tree", "HEAD"], source, context, repo=repo)
    entries = []
    for record in listing.decode("utf-8", errors="replace").split("\0"):
        if record:
            meta, path = record.split("\t", 1)
            mode, _, oid = meta.split()
            entries.append(TreeEntry(mode=mode, oid=oid, path=PurePosixPath(path)))
    return entries


def _read_blobs(
    source: str, repo: Path, oids: list[str], context: CrawlContext
) -> tuple[dict[str, bytes], set[str]]:
    """Contents of the blobs present and within the cap, and the blobs the clone filtered.

    Blobs the clone filter left on the server are never asked for (``cat-file`` would
    fetch them lazily); sizes are checked before any content is read.
    """
    missing = {
        line[1:]
        for line in _git(
            ["rev-list", "--objects", "--missing=print", "HEAD"], source, context, repo=repo
        )
        .decode()
        .splitlines()
        if line.startswith("?")
    }
    present = sorted({oid for oid in oids if oid not in missing})
    request = "".join(f"{oid}\n" for oid in present).encode()
    sizes = _git(["cat-file", "--batch-check"], source, context, repo=repo, stdin=request)
    small = [
        oid
        for oid, _, size in (line.split() for line in sizes.decode().splitlines())
        if int(size) <= context.settings.max_file_bytes
    ]
    request = "".join(f"{oid}\n" for oid in small).encode()
    output = _git(["cat-file", "--batch"], source, context, repo=repo, stdin=request)
    blobs: dict[str, bytes] = {}
    position = 0
    while position < len(output):
        header_end = output.index(b"\n", position)
        oid, _, size = output[position:header_end].decode().split()
        start = header_end + 1
        blobs[oid] = output[start : start + int(size)]
        position = start + int(size) + 1
    return blobs, missing
