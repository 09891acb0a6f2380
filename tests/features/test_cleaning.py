from __future__ import annotations

from twin_lib.domain import Category, RawDocument
from twin_lib.features.cleaning import clean_document, clean_text


def test_prose_is_flattened_and_markdown_stripped():
    text = (
        "# Title\r\n\r\n\r\n\r\nSome  **bold**\tand [a link](https://x.org) ![img](a.png)"
        "\u200b.\x07"
    )
    assert clean_text(text, Category.ARTICLE) == "Title\n\nSome bold and a link img."


def test_code_keeps_indentation_and_markup():
    code = "def f():\r\n    return '**x**'   \n\n\n\n# comment\n"
    assert clean_text(code, Category.REPOSITORY) == "def f():\n    return '**x**'\n\n# comment"


def test_unicode_is_normalised_the_same_way_for_queries_and_documents():
    assert clean_text("ﬁne café", Category.POST) == clean_text("fine cafe\u0301", Category.POST)


def test_clean_document_keeps_provenance():
    raw = RawDocument.create(
        text="  Hello   world  ",
        title=" T ",
        author="a",
        source_url="https://x.org/1",
        origin="https://x.org",
        category=Category.POST,
    )
    cleaned = clean_document(raw)
    assert cleaned.text == "Hello world"
    assert cleaned.title == "T"
    assert (cleaned.document_id, cleaned.content_hash, cleaned.crawled_at) == (
        raw.document_id,
        raw.content_hash,
        raw.crawled_at,
    )


def test_mojibake_from_a_wrong_charset_is_repaired():
    """UTF-8 read as cp1252: what a page served with a wrong charset header looks like."""
    damaged = "The cafÃ© served crÃ¨me brÃ»lÃ©e â€” itâ€™s a classic."
    repaired = "The café served crème brûlée — it\u2019s a classic."
    assert clean_text(damaged, Category.ARTICLE) == repaired


def test_permalink_marks_and_boilerplate_lines_are_removed_in_every_category():
    page = (
        "Skip to content\n"
        "Introduction¶\n\n"
        "Please enable JavaScript to view the comments.\n"
        "The body of the text, with a ¶ sign in the middle.\n"
        "Back to top\n"
        "Heading 🔗"
    )
    for category in Category:
        assert clean_text(page, category) == (
            "Introduction\n\nThe body of the text, with a ¶ sign in the middle.\n\nHeading"
        )
