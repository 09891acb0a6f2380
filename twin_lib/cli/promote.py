"""``twin promote [VERSION]`` and ``twin reviews status VERSION``: the promotion gate.

``promote`` decides on a candidate from its evaluation against the base model and its
reviews, records approve or reject in the registry, and deploys only an approved version to
the cluster. A candidate still waiting for evidence is left as it is. Exit status: 0 when
approved (and deployed) or waiting, 1 when rejected or on any error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from twin_lib.cli.context import console, fail, literal, settings_of, show, summary

if TYPE_CHECKING:
    from twin_lib.promotion.decision import Check, Decision
    from twin_lib.promotion.reviews import ReviewEvidence

app = typer.Typer(help="Reviews of candidate versions.", no_args_is_help=True)

MODEL_OPTION = typer.Option(help="Registry model (default: serving.model_name, else twin).")
BACKEND_OPTION = typer.Option(
    help="Review backend (default: gate.review_backend; auto = automatic metrics only)."
)


@contextmanager
def _reported() -> Iterator[None]:
    """Gate, registry, deployment and backend errors as one failure line."""
    from twin_lib.promotion.reviews import UnknownReviewBackendError
    from twin_lib.steps.deploy import DeploymentError
    from twin_lib.storage import StorageError

    try:
        yield
    except (
        DeploymentError,
        StorageError,
        UnknownReviewBackendError,
        ValueError,
    ) as error:
        raise fail(str(error)) from error


def _notices(notices: list[str]) -> None:
    for notice in notices:
        console.print(f"[bold yellow]⚠ {literal(notice)}[/]", soft_wrap=True)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


STATUS_STYLE = {"passed": "green", "failed": "red", "waiting": "yellow", "skipped": "dim"}


def checks_table(checks: list[Check], title: str) -> Table:
    table = Table("check", "value", "rule", "status", "detail", title=title)
    for check in checks:
        style = STATUS_STYLE[check.status]
        table.add_row(
            check.name,
            _number(check.value),
            f"{check.comparison} {_number(check.threshold)}",
            f"[{style}]{check.status}[/]",
            literal(check.detail),
        )
    return table


def _verdict(approve: bool | None) -> str:
    return "-" if approve is None else "approve" if approve else "reject"


def responses_table(evidence: ReviewEvidence, title: str) -> Table:
    """Every submitted response: the candidate's ratings, the base answer's, the comment."""
    table = Table("record", "reviewer", "voice", "grounding", "verdict", "base v/g", title=title)
    table.add_column("comment", overflow="fold")
    for record in evidence.records:
        for response in record.responses:
            table.add_row(
                literal(record.sample_id),
                literal(response.reviewer),
                _number(response.voice),
                _number(response.grounding),
                _verdict(response.approve),
                f"{_number(response.base_voice)}/{_number(response.base_grounding)}",
                literal(response.comment or ""),
            )
    return table


def _print_decision(decision: Decision) -> None:
    _notices(decision.notices)
    console.print(checks_table(decision.checks, f"gate: {decision.model} {decision.version}"))
    show(decision.reason)


def promote(
    ctx: typer.Context,
    version: Annotated[
        str | None, typer.Argument(help="Candidate version, e.g. v0003 (default: newest).")
    ] = None,
    model: Annotated[str | None, MODEL_OPTION] = None,
    review_backend: Annotated[str | None, BACKEND_OPTION] = None,
    by: Annotated[str, typer.Option(help="Who decides (recorded in the history).")] = (
        "twin promote"
    ),
    dry_run: Annotated[
        bool, typer.Option(help="Decide and show why; record nothing, deploy nothing.")
    ] = False,
) -> None:
    """Decide on a candidate (approve, reject or wait) and deploy it if approved."""
    from twin_lib.promotion.decision import Outcome
    from twin_lib.steps.promotion import ApprovedNotDeployedError
    from twin_lib.steps.promotion import promote as promote_version

    settings = settings_of(ctx)
    with _reported():
        try:
            result = promote_version(
                settings, version, by=by, name=model, backend=review_backend, dry_run=dry_run
            )
        except ApprovedNotDeployedError as error:
            _print_decision(error.decision)
            raise fail(str(error)) from error
    decision = result.decision
    _print_decision(decision)
    if result.deployment:
        show(result.deployment.get("action", result.deployment))
    label = f"{decision.model} {decision.version}"
    human = "" if decision.human_review else " (no human review: automatic metrics only)"
    if dry_run:
        summary(f"{label} would be: {decision.outcome}{human}; dry run, nothing recorded")
    elif decision.outcome == Outcome.REJECT:
        raise fail(f"{label} rejected{human}; it will not be deployed")
    elif decision.outcome == Outcome.WAIT:
        summary(f"{label} waits for evidence{human}; nothing recorded")
    else:
        summary(f"{label} approved{human} and deployed")


@app.command()
def status(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version, e.g. v0003.")],
    model: Annotated[str | None, MODEL_OPTION] = None,
    review_backend: Annotated[str | None, BACKEND_OPTION] = None,
) -> None:
    """What was sent for review, what reviewers said so far, and the gate's review checks."""
    from twin_lib.steps.promotion import review_status

    settings = settings_of(ctx)
    with _reported():
        found = review_status(settings, version, name=model, backend=review_backend)
    evidence, reviews = found.evidence, found.evidence.summary
    label = f"{found.model} {found.version}"
    console.print(f"[bold]{literal(label)}[/] — {found.status}, backend {evidence.backend}")
    _notices([evidence.notice] if evidence.notice else [])
    if found.request is not None:
        where = f" at {found.request.location}" if found.request.location else ""
        show(
            f"requested {found.request.requested_at:%Y-%m-%d %H:%M}: {found.request.samples} "
            f"sample(s){where}"
        )
    else:
        show("no review was requested for this version")
    if evidence.human:
        facts = Table.grid(padding=(0, 2))
        for name, value in (
            ("records reviewed", f"{reviews.reviewed_records} of {reviews.records}"),
            ("responses", str(reviews.responses)),
            ("reviewers", str(reviews.reviewers)),
            ("mean rating", _number(reviews.mean_rating)),
            ("approval rate", _number(reviews.approval_rate)),
            ("agreement", _number(reviews.agreement)),
        ):
            facts.add_row(name, value)
        console.print(facts)
        console.print(checks_table(found.checks, "review checks"))
    if found.recorded is not None and found.recorded.human:
        console.print(responses_table(found.recorded, "reviews recorded with the decision"))
    elif evidence.human:
        console.print(responses_table(evidence, "reviews so far"))
    if found.decision is not None:
        _notices([n for n in found.decision.notices if n != evidence.notice])
        show(f"decided {found.decision.outcome} by {found.decision.by}: {found.decision.reason}")
    if not evidence.human:
        summary(f"{label}: no human review ({evidence.backend} backend)")
    else:
        waiting = sum(1 for c in found.checks if c.status == "waiting")
        summary(
            f"{label}: {reviews.responses} response(s) of {settings.gate.min_responses} needed"
            + (f", {waiting} review check(s) waiting" if waiting else ", enough to decide")
        )
