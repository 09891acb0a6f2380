"""Text cleaning per category, shared by the feature pipeline and the inference side.

Queries at inference time go through ``clean_text`` too, so the text a query is embedded
from is normalised exactly like the chunks it is compared with (no training/serving skew).
Code keeps its line structure and indentation; prose is flattened to paragraphs.

Cleaning is also the safety net behind every crawler: text decoded with the wrong charset
is repaired with ftfy, and permalink marks and site boilerplate lines that are not the
author's writing are dropped, whatever category or crawler the text came from.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from twin_lib.domain import Category, CleanedDocument, RawDocument
from twin_lib.domain.encoding import repair_encoding

CLEANING_VERSION = "2"
"""Part of the feature version: bump it whenever a change here alters cleaned text, so the
next sync re-processes every document instead of mixing old and new cleaning."""


@dataclass(frozen=True)
class CleaningSpec:
    """What a category keeps: code needs its whitespace, prose does not need its markup."""

    keep_indentation: bool
    strip_markdown: bool


CLEANING: dict[Category, CleaningSpec] = {
    Category.ARTICLE: CleaningSpec(keep_indentation=False, strip_markdown=True),
    Category.POST: CleaningSpec(keep_indentation=False, strip_markdown=True),
    Category.REPOSITORY: CleaningSpec(keep_indentation=True, strip_markdown=False),
}

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+", re.MULTILINE)
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|`)(?=\S)(.+?)(?<=\S)\1")
_PERMALINK_MARK = re.compile(r"[ \t]*[¶🔗][ \t]*$", re.MULTILINE)
_BOILERPLATE_LINE = re.compile(
    r"^[ \t]*(?:"
    r"(?:please )?(?:enable|turn on) javascript\b.*"
    r"|(?:you need to |this (?:site|page) requires )(?:enable )?javascript\b.*"
    r"|skip to (?:main )?content"
    r"|back to top"
    r"|share (?:this|on)(?: (?:post|article|page))?:?"
    r"|we use cookies\b.*"
    r"|accept (?:all )?cookies"
    r")[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
_SPACES = re.compile(r"[ \t\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _drop_control_characters(text: str) -> str:
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")


def clean_text(text: str, category: Category) -> str:
    """Normalise Unicode, drop invisible and control characters, tidy whitespace and markup."""
    spec = CLEANING[category]
    text = unicodedata.normalize("NFKC", repair_encoding(text)).translate(_INVISIBLE)
    text = _drop_control_characters(text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _BOILERPLATE_LINE.sub("", _PERMALINK_MARK.sub("", text))
    if spec.strip_markdown:
        text = _MD_IMAGE.sub(r"\1", text)
        text = _MD_LINK.sub(r"\1", text)
        text = _MD_HEADING.sub("", text)
        text = _MD_EMPHASIS.sub(r"\2", text)
    if spec.keep_indentation:
        lines = [line.rstrip() for line in text.split("\n")]
    else:
        lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def clean_document(document: RawDocument) -> CleanedDocument:
    """The cleaned twin of a raw document; provenance fields are carried over unchanged."""
    fields = document.model_dump(exclude={"text", "title", "metadata"})
    return CleanedDocument(
        **fields,
        title=clean_text(document.title, document.category),
        text=clean_text(document.text, document.category),
    )
