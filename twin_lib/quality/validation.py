"""Running checks with Great Expectations and turning results into per-record reasons."""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from twin_lib.quality.checks import Check
from twin_lib.quality.frames import ROW

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    """How one expectation fared over the whole batch."""

    check: str
    column: str
    success: bool
    evaluated: int
    failed: int


@dataclass
class ValidationResult:
    """Per-expectation results and, for each failing row position, the failed expectations."""

    suite: str
    total: int
    checks: list[CheckResult] = field(default_factory=list)
    reasons: dict[int, list[str]] = field(default_factory=dict)

    @property
    def failed_rows(self) -> int:
        return len(self.reasons)

    @property
    def failure_rate(self) -> float:
        return self.failed_rows / self.total if self.total else 0.0


@functools.cache
def _context() -> Any:
    """One ephemeral context per process: no files written, no network, imported lazily.

    GX's per-metric progress bars are switched off: they flood pipeline logs with hundreds
    of carriage-return lines per validation, and the steps log their own counts. Its INFO
    messages (dozens on import, about its own decorators and temporary folders) are kept out
    of normal output too; with DEBUG logging they stay.
    """
    quiet = not logging.getLogger("great_expectations").isEnabledFor(logging.DEBUG)
    if quiet:
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types import base
    from great_expectations.data_context.types.base import ProgressBarsConfig

    if quiet:  # this module sets its own logger to INFO on import
        logging.getLogger(base.__name__).setLevel(logging.WARNING)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def validate_frame(frame: pd.DataFrame, checks: list[Check], suite_name: str) -> ValidationResult:
    """Validate every row; rows are identified by the frame's ``_row`` column."""
    result = ValidationResult(suite=suite_name, total=len(frame))
    if frame.empty:
        return result
    context = _context()
    import great_expectations as gx

    source = context.data_sources.add_or_update_pandas(f"twin-{suite_name}")
    asset = source.add_dataframe_asset(f"{suite_name}-{len(source.assets)}")
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
        batch_parameters={"dataframe": frame}
    )
    suite = gx.ExpectationSuite(name=suite_name)
    for position, check in enumerate(checks):
        expectation = getattr(gx.expectations, check.expectation)(**check.kwargs)
        expectation.meta = {"check": position}
        suite.add_expectation(expectation)
    outcome = batch.validate(
        suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]}
    )
    reasons: dict[int, list[str]] = defaultdict(list)
    for expectation_result in outcome.results:
        check = checks[int(expectation_result.expectation_config.meta["check"])]
        details = expectation_result.result or {}
        rows = sorted({int(item[ROW]) for item in details.get("unexpected_index_list") or []})
        for row in rows:
            reasons[row].append(check.describe())
        result.checks.append(
            CheckResult(
                check=check.describe(),
                column=check.column,
                success=bool(expectation_result.success),
                evaluated=int(details.get("element_count", len(frame))),
                failed=len(rows),
            )
        )
    result.reasons = dict(reasons)
    logger.info("%s: %d/%d records failed", suite_name, result.failed_rows, result.total)
    return result
