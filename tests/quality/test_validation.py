from __future__ import annotations

import math
import subprocess
import sys

import pytest

from twin_lib.domain import Category, EmbeddedChunk, RawDocument
from twin_lib.quality.checks import chunk_checks, raw_document_checks
from twin_lib.quality.frames import chunks_frame, raw_documents_frame
from twin_lib.quality.gate import (
    QualityGateError,
    enforce_failure_threshold,
    split_by_validation,
)
from twin_lib.quality.report import render_report, validation_metrics
from twin_lib.quality.validation import validate_frame
from twin_lib.settings import QualitySettings

GOOD_TEXT = "A perfectly ordinary paragraph of English prose about lakes and rivers."


def raw(
    text: str = GOOD_TEXT,
    *,
    url: str = "https://blog.example.org/post",
    author: str = "Ada",
    category: Category = Category.ARTICLE,
) -> RawDocument:
    return RawDocument.create(
        text=text, author=author, source_url=url, origin="o", category=category
    )


def validate_raw(documents):
    frame = raw_documents_frame(documents)
    return validate_frame(frame, raw_document_checks(QualitySettings()), "raw_documents")


def test_good_documents_pass():
    documents = [raw(url=f"https://blog.example.org/{i}") for i in range(5)]
    result = validate_raw(documents)
    assert result.failed_rows == 0
    assert all(check.success for check in result.checks)
    passed, quarantined = split_by_validation(documents, result)
    assert passed == documents and quarantined == []


def test_each_bad_document_is_quarantined_with_its_reasons():
    good = raw(url="https://blog.example.org/good")
    bad = {
        "short": raw("menu", url="https://blog.example.org/short"),
        "url": raw(url="ftp://files.example.org/x"),
        "author": raw(url="https://blog.example.org/anon", author="   "),
        "mojibake": raw(
            "Ã©\ufffd\ufffd\x85\x85" * 10 + GOOD_TEXT[:20], url="https://blog.example.org/moji"
        ),
        "numbers": raw("0123456789 " * 20, url="https://blog.example.org/numbers"),
    }
    duplicate = raw(GOOD_TEXT + " (edited)", url="https://blog.example.org/good")
    documents = [good, *bad.values(), duplicate]
    result = validate_raw(documents)
    passed, quarantined = split_by_validation(documents, result)
    assert passed == []  # the duplicate id also makes the original ambiguous
    reasons = {q.record["source_url"]: q.reasons for q in quarantined}
    assert any("text_chars" in r for r in reasons["https://blog.example.org/short"])
    assert any("source_url" in r for r in reasons["ftp://files.example.org/x"])
    assert any("author" in r for r in reasons["https://blog.example.org/anon"])
    assert any("printable_ratio" in r for r in reasons["https://blog.example.org/moji"])
    assert any("letter_ratio" in r for r in reasons["https://blog.example.org/numbers"])
    assert all(
        any("Unique(document_id" in r for r in q.reasons)
        for q in quarantined
        if q.record["source_url"] == "https://blog.example.org/good"
    )
    assert result.failed_rows == len(documents)


def test_unknown_category_is_caught_even_if_a_model_was_bypassed():
    document = raw().model_copy(update={"category": "podcast"})
    result = validate_raw([document])
    assert any("category" in r for r in result.reasons[0])


def test_failure_rate_gate():
    documents = [raw(url=f"https://blog.example.org/{i}") for i in range(9)] + [raw("x")]
    result = validate_raw(documents)
    assert result.failure_rate == pytest.approx(0.1)
    enforce_failure_threshold(result, max_failure_rate=0.1)
    with pytest.raises(
        QualityGateError, match=r"1/10 records failed validation .*max_failure_rate"
    ):
        enforce_failure_threshold(result, max_failure_rate=0.05)


def chunk(index: int, vector: list[float], text: str = "some text", tokens: int = 5):
    base = raw()
    return EmbeddedChunk(
        **base.model_dump(exclude={"text", "title", "metadata"}),
        chunk_id=f"c{index}",
        chunk_index=index,
        text=text,
        token_count=tokens,
        embedding=vector,
        embedding_model="m",
    )


def test_chunk_suite_checks_tokens_emptiness_dimension_and_norm():
    unit = [1.0] + [0.0] * 383
    chunks = [
        chunk(0, unit),
        chunk(1, unit, text="   "),
        chunk(2, unit, tokens=300),
        chunk(3, [1.0] + [0.0] * 99),
        chunk(4, [0.5] * 384),
    ]
    checks = chunk_checks(QualitySettings(), max_tokens=254, max_chars=4000, dimension=384)
    result = validate_frame(chunks_frame(chunks), checks, "chunks")
    assert sorted(result.reasons) == [1, 2, 3, 4]
    assert "text_chars" in result.reasons[1][0]
    assert "token_count" in result.reasons[2][0]
    assert "embedding_dim" in result.reasons[3][0]
    assert "embedding_norm" in result.reasons[4][0]
    assert math.isclose(validation_metrics(result)["chunks_failure_rate"], 0.8)


def test_report_is_one_self_contained_page_with_metrics():
    documents = [raw(url="https://blog.example.org/a"), raw("<script>", url="https://b.org/x")]
    result = validate_raw(documents)
    _, quarantined = split_by_validation(documents, result)
    page = render_report(result, quarantined, max_failure_rate=0.2)
    assert page.startswith("<!doctype html>") and "FAILED" in page
    assert "https://b.org/x" in page and "<script>" not in page
    assert "<link" not in page and "src=" not in page
    metrics = validation_metrics(result)
    assert metrics["raw_documents_records"] == 2.0
    assert metrics["raw_documents_quarantined"] == 1.0


def test_empty_input_validates_to_nothing():
    result = validate_raw([])
    assert result.total == 0 and result.failure_rate == 0.0


def test_repairable_mojibake_passes_and_replacement_characters_are_quarantined():
    """A few mis-decoded characters barely move the printable ratio; they used to pass."""
    repairable = raw(GOOD_TEXT + " The cafÃ© was itâ€™s best.", url="https://b.org/repairable")
    lost = raw(GOOD_TEXT + " The caf\ufffd was it\ufffds best.", url="https://b.org/lost")
    result = validate_raw([repairable, lost])
    assert sorted(result.reasons) == [1]
    assert result.reasons[1] == ["ExpectColumnValuesToBeBetween(encoding_damage, max_value=0)"]


def test_chunks_over_the_character_cap_or_mostly_unknown_tokens_are_quarantined():
    unit = [1.0] + [0.0] * 383
    chunks = [
        chunk(0, unit, text="ordinary words here", tokens=3),
        chunk(1, unit, text="Q" * 2000, tokens=1),
        chunk(2, unit, text="word " * 1000, tokens=1000),
    ]
    checks = chunk_checks(QualitySettings(), max_tokens=2000, max_chars=4000, dimension=384)
    result = validate_frame(chunks_frame(chunks), checks, "chunks")
    assert sorted(result.reasons) == [1, 2]
    assert any("chars_per_token" in r for r in result.reasons[1])
    assert any("text_chars" in r for r in result.reasons[2])


def test_great_expectations_info_chatter_stays_out_of_normal_output():
    """In a fresh process, as the CLI runs it: GX logs dozens of INFO lines on first use."""
    script = (
        "from twin_lib.logs import configure_logging\n"
        "configure_logging('INFO', as_json=False)\n"
        "from tests.quality.test_validation import raw, validate_raw\n"
        "validate_raw([raw()])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    output = done.stdout + done.stderr
    assert "raw_documents: 0/1 records failed" in output
    assert "great_expectations" not in output
