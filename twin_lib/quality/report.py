"""A single self-contained HTML page and a metrics dict per validation.

The KFP UI shows one HTML file per ``Output[HTML]``; Great Expectations' Data Docs is a
multi-file site, so the page is rendered here from the validation result instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from twin_lib.quality.gate import QuarantinedRecord
from twin_lib.quality.validation import ValidationResult

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem}
th{background:#f3f3f3}.ok{color:#17692b}.bad{color:#b00020}code{font-size:.9em}
"""


def validation_metrics(result: ValidationResult) -> dict[str, float]:
    """Counts and rates as KFP ``Metrics`` (numbers only)."""
    return {
        f"{result.suite}_records": float(result.total),
        f"{result.suite}_passed": float(result.total - result.failed_rows),
        f"{result.suite}_quarantined": float(result.failed_rows),
        f"{result.suite}_failure_rate": round(result.failure_rate, 6),
        f"{result.suite}_expectations_failed": float(sum(not c.success for c in result.checks)),
    }


def render_report(
    result: ValidationResult,
    quarantined: Sequence[QuarantinedRecord],
    *,
    max_failure_rate: float,
    sample_size: int = 50,
) -> str:
    """The whole report on one page: verdict, each expectation, a sample of quarantined rows."""
    verdict_ok = result.failure_rate <= max_failure_rate
    verdict = (
        f"<p class='{'ok' if verdict_ok else 'bad'}'><b>{'PASSED' if verdict_ok else 'FAILED'}"
        f"</b>: {result.failed_rows} of {result.total} records quarantined "
        f"({result.failure_rate:.1%}; threshold {max_failure_rate:.1%})</p>"
    )
    rows = "".join(
        f"<tr><td><code>{escape(c.check)}</code></td>"
        f"<td class='{'ok' if c.success else 'bad'}'>{'pass' if c.success else 'fail'}</td>"
        f"<td>{c.evaluated}</td><td>{c.failed}</td></tr>"
        for c in result.checks
    )
    samples = "".join(
        f"<tr><td>{escape(str(q.record.get('source_url', q.record.get('chunk_id', ''))))}</td>"
        f"<td>{'<br>'.join(escape(r) for r in q.reasons)}</td></tr>"
        for q in quarantined[:sample_size]
    )
    quarantine_table = (
        f"<h2>Quarantined records (first {min(sample_size, len(quarantined))} of "
        f"{len(quarantined)})</h2><table><tr><th>record</th><th>failed expectations</th></tr>"
        f"{samples}</table>"
        if quarantined
        else "<p>No record was quarantined.</p>"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(result.suite)} "
        f"validation</title><style>{_STYLE}</style></head><body>"
        f"<h1>Validation of {escape(result.suite)}</h1>{verdict}"
        "<h2>Expectations</h2><table><tr><th>expectation</th><th>result</th>"
        f"<th>evaluated</th><th>failed</th></tr>{rows}</table>{quarantine_table}</body></html>"
    )
