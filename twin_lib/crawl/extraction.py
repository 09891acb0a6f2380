"""Main-text extraction from HTML, delegated to trafilatura rather than hand-written regexes."""

from __future__ import annotations

from dataclasses import dataclass

import trafilatura


@dataclass(frozen=True)
class ExtractedText:
    """The article body and its title, as trafilatura found them."""

    title: str
    text: str
    url: str | None


def decode_html(body: bytes, charset: str | None) -> str:
    """Trust a declared charset; otherwise let trafilatura sniff meta tags and bytes."""
    if charset:
        try:
            return body.decode(charset, errors="replace")
        except LookupError:
            pass
    return trafilatura.utils.decode_file(body)


def extract_main_text(html: str, url: str | None = None) -> ExtractedText | None:
    """None when the page has no recognisable main text (a menu, an error page, a binary)."""
    document = trafilatura.bare_extraction(
        html, url=url, with_metadata=True, include_comments=False, include_tables=True
    )
    if document is None or not (document.text or "").strip():
        return None
    return ExtractedText(title=document.title or "", text=document.text, url=document.url)
