"""The King James Version, one document per chapter (see PROVENANCE.md beside this file).

A real body of English prose the platform did not write, with a clear licence and available
offline: the demo's author, the feature benchmark's corpus and the tests' fixture.
"""

from __future__ import annotations

import gzip
import html
import json
from pathlib import Path

from pydantic import BaseModel

CORPUS = Path(__file__).with_name("kjv_chapters.jsonl.gz")
AUTHOR = "King James translators"


class Chapter(BaseModel):
    book: str
    chapter: int
    title: str
    text: str

    @property
    def slug(self) -> str:
        return f"{self.book}-{self.chapter:03d}"


def load_chapters(limit: int | None = None, *, skip: int = 0) -> list[dict[str, str]]:
    """Chapters in canonical order (after the first ``skip``), each with book, chapter,
    title and text."""
    chapters: list[dict[str, str]] = []
    with gzip.open(CORPUS, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines):
            if number < skip:
                continue
            chapters.append(json.loads(line))
            if limit is not None and len(chapters) == limit:
                break
    return chapters


def write_markdown_folder(chapters: list[dict[str, str]], folder: Path) -> Path:
    """One Markdown file per chapter, the way an author's exported blog would look."""
    folder.mkdir(parents=True, exist_ok=True)
    for raw in chapters:
        chapter = Chapter.model_validate(raw)
        (folder / f"{chapter.slug}.md").write_text(
            f"# {chapter.title}\n\n{chapter.text}\n", encoding="utf-8"
        )
    return folder


def article_html(chapter: Chapter) -> str:
    """A chapter as a blog post page: navigation around one ``<article>``, as sites have."""
    title = html.escape(chapter.title)
    paragraphs = "\n".join(
        f"<p>{html.escape(part.strip())}</p>" for part in chapter.text.split("\n") if part.strip()
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<title>{title}</title><meta name="author" content="{AUTHOR}"></head>\n'
        '<body><nav><a href="index.html">All chapters</a></nav>\n'
        f"<article><h1>{title}</h1>\n{paragraphs}\n</article>\n"
        "<footer>Public domain text (King James Version, 1611).</footer></body></html>\n"
    )


def write_articles(chapters: list[dict[str, str]], folder: Path) -> list[str]:
    """One HTML page per chapter plus an index; returns the pages' file names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for raw in chapters:
        chapter = Chapter.model_validate(raw)
        name = f"{chapter.slug}.html"
        _write_if_changed(folder / name, article_html(chapter))
        names.append(name)
    links = "\n".join(f'<li><a href="{n}">{html.escape(n)}</a></li>' for n in names)
    _write_if_changed(
        folder / "index.html",
        f"<!doctype html>\n<html><head><title>Chapters</title></head><body><ul>\n{links}\n"
        "</ul></body></html>\n",
    )
    return names


def _write_if_changed(path: Path, text: str) -> None:
    """Unchanged pages keep their modification time, as a real site's would."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
