"""``twin feedback push`` and ``twin feedback collect``: users' ratings of served answers to
reviewers in Argilla, and their corrections back as preference pairs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from twin_lib.cli.context import fail, settings_of, show, summary

app = typer.Typer(help="Users' ratings of served answers, corrected by reviewers.")

MODEL_OPTION = typer.Option(help="Registry model (default: serving.model_name, else twin).")


@contextmanager
def _reported() -> Iterator[None]:
    from twin_lib.storage import StorageError

    try:
        yield
    except (StorageError, ValueError) as error:
        raise fail(str(error)) from error


@app.command()
def push(ctx: typer.Context, model: Annotated[str | None, MODEL_OPTION] = None) -> None:
    """Send every rated answer to the Argilla feedback dataset, where reviewers correct it."""
    from twin_lib.steps.feedback import push_feedback

    with _reported():
        pushed = push_feedback(settings_of(ctx), model)
    show(f"reviewers correct them at {pushed.location}")
    summary(
        f"{pushed.answers} rated answer(s) in {pushed.dataset!r}: {pushed.added} new, "
        f"{pushed.answers - pushed.added} already there"
    )


@app.command()
def collect(ctx: typer.Context, model: Annotated[str | None, MODEL_OPTION] = None) -> None:
    """Write reviewers' corrections as preference pairs for the next preference dataset."""
    from twin_lib.steps.feedback import collect_feedback

    with _reported():
        collected = collect_feedback(settings_of(ctx), model)
    show(
        "the next preference dataset uses them with "
        f"TWIN_DATASETS__FEEDBACK_PAIRS_KEY={collected.key}"
    )
    summary(
        f"{collected.pairs} correction(s) of {collected.answers} answer(s) of {collected.model} "
        f"written to {collected.uri}"
    )
