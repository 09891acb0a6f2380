"""Sources on disk shared by the crawl tests: git repositories and LinkedIn export archives."""

from __future__ import annotations

import csv
import io
import subprocess
import zipfile
from pathlib import Path


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.org", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def write_linkedin_export(path: Path) -> Path:
    """The layout of LinkedIn's "Get a copy of your data" archive (posts and articles)."""
    shares = io.StringIO()
    writer = csv.writer(shares)
    writer.writerow(["Date", "ShareLink", "ShareCommentary", "SharedUrl", "MediaUrl", "Visibility"])
    writer.writerow(
        [
            "2024-03-01 09:15:00",
            "https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A7001",
            "Shipping a feature store this week.\n\nLessons:\n- idempotent writes",
            "",
            "",
            "MEMBER_NETWORK",
        ]
    )
    writer.writerow(
        [
            "2024-03-02 10:00:00",
            "https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A7002",
            "",
            "https://example.org/reshared",
            "",
            "MEMBER_NETWORK",
        ]
    )
    writer.writerow(
        [
            "2024-03-03 11:30:00",
            "https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A7003",
            '"Quotes, commas, and ""escapes"" survive."',
            "",
            "",
            "CONNECTIONS",
        ]
    )
    article = (
        "<html><head><title>Why lakes beat swamps</title></head><body><h1>Why lakes beat "
        "swamps</h1><p>Created on 2024-02-01</p><div><p>"
        + "A raw data lake keeps every crawl as an immutable snapshot. " * 6
        + "</p></div></body></html>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Shares.csv", "\ufeff" + shares.getvalue())
        archive.writestr("Articles/Articles/2024-02-01 Why lakes beat swamps.html", article)
        archive.writestr("Profile.csv", "First Name,Last Name\nAda,Writer\n")
    return path
