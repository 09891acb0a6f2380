"""The expectations, as plain data, for raw documents and for embedded chunks.

Kept as (expectation class name, kwargs) so that building a suite does not import Great
Expectations (4-5 s) until validation really runs. Every check is a column-map
expectation so that each failure points at the rows that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twin_lib.domain import Category
from twin_lib.settings import QualitySettings

URL_PATTERN = r"^(?:(?:https?|git)://[^\s/$.?#][^\s]*|file:///[^\s]+)$"


@dataclass(frozen=True)
class Check:
    """One expectation: its Great Expectations class name and arguments."""

    expectation: str
    kwargs: dict[str, object] = field(default_factory=dict)

    @property
    def column(self) -> str:
        return str(self.kwargs["column"])

    def describe(self) -> str:
        """A reason a person can read in the quarantine and the report."""
        args = ", ".join(f"{k}={v}" for k, v in self.kwargs.items() if k != "column")
        return f"{self.expectation}({self.column}{', ' + args if args else ''})"


def _present(*columns: str) -> list[Check]:
    return [Check("ExpectColumnValuesToNotBeNull", {"column": c}) for c in columns]


def raw_document_checks(settings: QualitySettings) -> list[Check]:
    """Non-empty text of sane length and encoding, valid URL, known category, author, unique id."""
    return [
        *_present("document_id", "author", "source_url", "category", "content_hash"),
        Check("ExpectColumnValuesToBeUnique", {"column": "document_id"}),
        Check("ExpectColumnValueLengthsToBeBetween", {"column": "author", "min_value": 1}),
        Check("ExpectColumnValuesToMatchRegex", {"column": "source_url", "regex": URL_PATTERN}),
        Check(
            "ExpectColumnValuesToBeInSet",
            {"column": "category", "value_set": sorted(c.value for c in Category)},
        ),
        Check(
            "ExpectColumnValuesToBeBetween",
            {
                "column": "text_chars",
                "min_value": settings.min_document_chars,
                "max_value": settings.max_document_chars,
            },
        ),
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": "printable_ratio", "min_value": settings.min_printable_ratio},
        ),
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": "letter_ratio", "min_value": settings.min_letter_ratio},
        ),
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": "encoding_damage", "max_value": settings.max_encoding_damage},
        ),
    ]


def chunk_checks(
    settings: QualitySettings, *, max_tokens: int, max_chars: int, dimension: int
) -> list[Check]:
    """No empty or oversized chunk, tokens within the model window and standing for text
    (not one unknown token covering a huge span), vectors of the right size and norm."""
    tolerance = settings.embedding_norm_tolerance
    return [
        *_present("chunk_id", "document_id"),
        Check("ExpectColumnValuesToBeUnique", {"column": "chunk_id"}),
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": "text_chars", "min_value": 1, "max_value": max_chars},
        ),
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": "chars_per_token", "max_value": settings.max_chars_per_token},
        ),
        Check(
            "ExpectColumnValuesToBeBetween",
            {
                "column": "token_count",
                "min_value": settings.min_chunk_tokens,
                "max_value": max_tokens,
            },
        ),
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": "embedding_dim", "min_value": dimension, "max_value": dimension},
        ),
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": "embedding_norm", "min_value": 1 - tolerance, "max_value": 1 + tolerance},
        ),
    ]
