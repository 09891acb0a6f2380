"""The demo's sources, served the way a user's are: articles over HTTP, plus a git repository.

The articles are served by a small HTTP server on loopback for as long as the demo runs; the
repository is a real one, committed with a fixed author and date so that the same chapters
always make the same commit (and a second run finds nothing new to crawl).
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from twin_lib.demo.corpus import AUTHOR, write_markdown_folder

log = logging.getLogger(__name__)

COMMIT_DATE = "2011-05-02T12:00:00+00:00"  # the 400th anniversary; only stability matters
DEMO_EMAIL = "translators@kjv.invalid"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        log.debug("article server: " + format, *args)


class ArticleServer:
    """Serves ``folder`` on ``host:port`` from a background thread, until closed."""

    def __init__(self, folder: Path, *, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        try:
            self.server = ThreadingHTTPServer((host, port), handler)
        except OSError as error:
            raise OSError(
                f"cannot serve the demo's articles on {host}:{port}: {error.strerror}; "
                "set TWIN_DEMO__HTTP_PORT to a free port"
            ) from error
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> ArticleServer:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": AUTHOR,
        "GIT_AUTHOR_EMAIL": DEMO_EMAIL,
        "GIT_AUTHOR_DATE": COMMIT_DATE,
        "GIT_COMMITTER_NAME": AUTHOR,
        "GIT_COMMITTER_EMAIL": DEMO_EMAIL,
        "GIT_COMMITTER_DATE": COMMIT_DATE,
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {repo} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def git_repository(chapters: list[dict[str, str]], repo: Path) -> str:
    """Chapters as Markdown files committed to a git repository; returns its head commit.

    Commits only when the files changed, so the same chapters keep the same head."""
    repo.mkdir(parents=True, exist_ok=True)
    if not (repo / ".git").exists():
        _git(repo, "init", "-q", "-b", "main")
    write_markdown_folder(chapters, repo / "chapters")
    _git(repo, "add", "-A")
    if _git(repo, "status", "--porcelain"):
        _git(repo, "commit", "-q", "-m", f"{len(chapters)} chapters")
    return _git(repo, "rev-parse", "HEAD")
