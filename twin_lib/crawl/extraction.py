"""Main-text extraction from HTML, delegated to trafilatura rather than hand-written regexes."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

import trafilatura

# The HTML standard's encoding prescan: a charset declared in a <meta> tag near the top.
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


@dataclass(frozen=True)
class ExtractedText:
    """The article body and its title, as trafilatura found them."""

    title: str
    text: str
    url: str | None


def declared_charset(body: bytes) -> str | None:
    """The charset a page declares in its first kilobyte, if Python knows it."""
    match = _META_CHARSET.search(body[:1024])
    if match is None:
        return None
    try:
        return codecs.lookup(match.group(1).decode("ascii")).name
    except LookupError:
        return None


def decode_html(body: bytes, charset: str | None) -> str:
    """HTTP header charset first, then the page's meta declaration, then byte sniffing."""
    for candidate in (charset, declared_charset(body)):
        if candidate:
            try:
                return body.decode(candidate, errors="replace")
            except LookupError:
                continue
    return trafilatura.utils.decode_file(body)


def extract_main_text(html: str, url: str | None = None) -> ExtractedText | None:
    """None when the page has no recognisable main text (a menu, an error page, a binary)."""
    document = trafilatura.bare_extraction(
        html, url=url, with_metadata=True, include_comments=False, include_tables=True
    )
    if document is None or not (document.text or "").strip():
        return None
    return ExtractedText(title=document.title or "", text=document.text, url=document.url)
