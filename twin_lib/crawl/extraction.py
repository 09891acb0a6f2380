"""Main-text extraction from HTML, delegated to maintained libraries rather than regexes.

Decoding: a charset the server or the page's ``<meta>`` declares (found by
charset_normalizer) is trusted only if the body decodes with it; ftfy then repairs text
that was mis-decoded before it reached us (UTF-8 read as Latin-1). Extraction:
trafilatura finds the article body after permalink marks are removed from the tree; a
page whose only text asks to enable JavaScript is refused, not stored.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import charset_normalizer
import ftfy
import trafilatura
from charset_normalizer.utils import any_specified_encoding
from lxml.html import HtmlElement

# The anchor text of heading links (Sphinx "headerlink", Hugo/Jekyll/MkDocs anchors).
_PERMALINK_MARKS = frozenset({"¶", "#", "🔗", "§", "⚓", "link", "permalink"})
# "Please enable JavaScript", "You need to enable JavaScript to run this app", ...
_SCRIPT_SHELL = re.compile(
    r"\b(enable|turn on|activate|requires?|need)\b[^.\n]{0,40}\bjavascript\b"
    r"|\bjavascript\b[^.\n]{0,40}\b(disabled|required|is off|must be enabled)\b",
    re.IGNORECASE,
)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Unicode blocks that windows-1252 text reaches besides the Latin ones (quotes, dashes, €, ™).
_LATIN_CODE_PAGE_SYMBOLS = frozenset(
    {"General Punctuation", "Currency Symbols", "Letterlike Symbols", "Spacing Modifier Letters"}
)
# Below this many words, a page that mentions enabling JavaScript is the shell, not an essay.
_SHELL_MAX_WORDS = 80


class NoMainTextError(Exception):
    """The HTML holds no text written by the author; ``reason`` says what it is instead."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ExtractedText:
    """The article body and its title, as trafilatura found them.

    ``canonical`` is the page's ``<link rel="canonical">``: where a syndicated copy says
    the original lives.
    """

    title: str
    text: str
    url: str | None
    canonical: str | None = None


def decode_html(body: bytes, charset: str | None) -> str:
    """The page's text, decoded with the charset that fits it and repaired by ftfy."""
    return ftfy.fix_encoding(_decode(body, charset))


def _decode(body: bytes, charset: str | None) -> str:
    """The HTML standard's order: byte-order mark, header, ``<meta>``, then a fallback.

    A declared charset is used only if the bytes decode with it (a wrong header must not
    turn letters into replacement characters).
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(codec, errors="replace")
    for candidate in (charset, any_specified_encoding(body[:4096])):
        if candidate:
            try:
                return body.decode(candidate)
            except (LookupError, UnicodeDecodeError):
                continue
    return _undeclared(body)


def _undeclared(body: bytes) -> str:
    """UTF-8 if the bytes are UTF-8; a detected non-Latin charset; else windows-1252.

    charset_normalizer tells scripts apart well (Cyrillic from Greek from Latin) but not
    the Latin code pages from one another (French in Latin-1 comes out as Baltic), so
    Latin text falls back to windows-1252, the standard's default.
    """
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(body).best()
    if best is not None and any(_is_non_latin(alphabet) for alphabet in best.alphabets):
        return str(best)
    return body.decode("cp1252", errors="replace")


def _is_non_latin(alphabet: str) -> bool:
    return "Latin" not in alphabet and alphabet not in _LATIN_CODE_PAGE_SYMBOLS


def extract_main_text(html: str, url: str | None = None) -> ExtractedText:
    """The article of a page; ``NoMainTextError`` for a menu, an error page or a script shell."""
    tree = trafilatura.load_html(html)
    if tree is None:
        raise NoMainTextError("not parseable as HTML")
    _drop_permalinks(tree)
    canonical = _canonical(tree, url)
    document = trafilatura.bare_extraction(
        tree, url=url, with_metadata=True, include_comments=False, include_tables=True
    )
    text = (document.text or "").strip() if document is not None else ""
    if not text:
        raise NoMainTextError("no main text found on the page")
    if len(text.split()) <= _SHELL_MAX_WORDS and _SCRIPT_SHELL.search(text):
        raise NoMainTextError(
            "the page is a script-rendered shell asking to enable JavaScript; its text is not "
            "in the HTML. Link to the article itself or to the site's feed"
        )
    return ExtractedText(
        title=document.title or "", text=document.text, url=document.url, canonical=canonical
    )


def _canonical(tree: HtmlElement, url: str | None) -> str | None:
    for link in tree.xpath("//link[@href]"):
        if "canonical" in (link.get("rel") or "").lower().split():
            absolute = urljoin(url or "", link.get("href").strip())
            return absolute if urlsplit(absolute).scheme in ("http", "https") else None
    return None


def _drop_permalinks(tree: HtmlElement) -> None:
    """Remove in-page links whose whole text is a permalink mark (``<a href="#x">¶</a>``)."""
    for anchor in tree.xpath("//a[starts-with(@href, '#')]"):
        label = anchor.text_content().replace("\ufe0f", "").strip().lower()
        if label in _PERMALINK_MARKS:
            anchor.drop_tree()
