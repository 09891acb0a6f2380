"""Splitting records into passed and quarantined, and stopping a run that fails too much.

A few bad records are expected (a page that moved, an empty post) and go to quarantine with
their reasons; many bad records mean something upstream broke, and the run must stop
before it overwrites good features with garbage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel

from twin_lib.quality.validation import ValidationResult

Record = TypeVar("Record", bound=BaseModel)


class QualityGateError(RuntimeError):
    """Too many records failed validation; the message says how many and where to look."""


class QuarantinedRecord(BaseModel):
    """A record that failed, the suite it failed, and every expectation it broke."""

    suite: str
    reasons: list[str]
    record: dict[str, object]


def split_by_validation(
    records: Sequence[Record], result: ValidationResult
) -> tuple[list[Record], list[QuarantinedRecord]]:
    """Rows are matched by position, the ``_row`` column the frame was built with."""
    passed: list[Record] = []
    quarantined: list[QuarantinedRecord] = []
    for position, record in enumerate(records):
        reasons = result.reasons.get(position)
        if reasons:
            quarantined.append(
                QuarantinedRecord(
                    suite=result.suite, reasons=reasons, record=record.model_dump(mode="json")
                )
            )
        else:
            passed.append(record)
    return passed, quarantined


def enforce_failure_threshold(result: ValidationResult, max_failure_rate: float) -> None:
    """Raise when the share of failed records passes the configured threshold."""
    if result.failure_rate > max_failure_rate:
        raise QualityGateError(
            f"{result.suite}: {result.failed_rows}/{result.total} records failed validation "
            f"({result.failure_rate:.1%} > {max_failure_rate:.1%} allowed). Inspect the "
            "validation report and the quarantine, fix the sources, or raise "
            "features.quality.max_failure_rate."
        )
