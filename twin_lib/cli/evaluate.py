"""``twin evaluate [VERSION]``: a registered version against its base model.

The models, the embedding model and the storage clients are imported when the command runs,
so ``twin`` itself starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from twin_lib.cli.context import console, fail, settings_of, show, summary

if TYPE_CHECKING:
    from twin_lib.evaluation.results import EvaluationResult
    from twin_lib.settings import TwinSettings


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def figures_table(result: EvaluationResult) -> Table:
    """Twin and base side by side, with the style calibration beside the style rows."""
    twin, base, calibration = result.candidate, result.base, result.calibration
    table = Table("figure", f"twin {result.version}", "base", "ceiling", "floor")
    table.add_row(
        "held-out perplexity",
        _fmt(twin.perplexity.perplexity, 2),
        _fmt(base.perplexity.perplexity, 2),
        "",
        "",
    )
    for measure, label in (("tfidf", "style TF-IDF"), ("embedding", "style embedding")):
        table.add_row(
            label,
            f"{getattr(twin.style, measure):.3f} "
            f"({_fmt(getattr(twin.style_position, measure), 2)})",
            f"{getattr(base.style, measure):.3f} "
            f"({_fmt(getattr(base.style_position, measure), 2)})",
            f"{getattr(calibration.ceiling, measure):.3f}",
            f"{getattr(calibration.floor, measure):.3f} ({calibration.floor_source})",
        )
    table.add_row("grounded sentences", _fmt(twin.grounding.rate, 2), _fmt(base.grounding.rate, 2))
    table.add_row(
        "words mean / p95",
        f"{twin.answers.words_mean:.1f} / {twin.answers.words_p95:.0f}",
        f"{base.answers.words_mean:.1f} / {base.answers.words_p95:.0f}",
    )
    table.add_row(
        "refusal rate", _fmt(twin.answers.refusal_rate, 2), _fmt(base.answers.refusal_rate, 2)
    )
    retrieval = result.retrieval
    table.add_row(
        f"retrieval hit@1 / hit@{retrieval.k} / MRR",
        f"{retrieval.hit_at_1:.2f} / {retrieval.hit_at_k:.2f} / {retrieval.mrr:.3f}",
        "(same retriever)",
    )
    if result.judge is not None:
        table.add_row(
            "judge twin win rate: style / accuracy",
            f"{result.judge.style.twin_win_rate:.2f} / {result.judge.accuracy.twin_win_rate:.2f}",
        )
    return table


def _download(settings: TwinSettings, uri: str, path: Path) -> None:
    from twin_lib.storage import ObjectStore

    bucket, key = uri.removeprefix("s3://").split("/", 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    ObjectStore(settings.minio).get_file(bucket, key, path)


def evaluate(
    ctx: typer.Context,
    version: Annotated[
        str | None, typer.Argument(help="Registry version, e.g. v0003 (default: the newest).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Registry model (default: serving.model_name, else twin)."),
    ] = None,
    questions: Annotated[
        int | None,
        typer.Option(min=1, help="Held-out questions to answer (default: evaluation setting)."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            help="HTML report file (default: reports/<model>/<version>/ in the state dir)."
        ),
    ] = None,
) -> None:
    """Measure a version against its base model and store the report with the version."""
    from twin_lib.steps.evaluation import evaluate_version
    from twin_lib.storage import StorageError

    settings = settings_of(ctx)
    if questions is not None:
        settings = settings.model_copy(
            update={
                "evaluation": settings.evaluation.model_copy(update={"max_questions": questions})
            }
        )
    try:
        result = evaluate_version(settings, version, name=model)
        path = report or settings.stack.state_dir / "reports" / result.label / "evaluation.html"
        _download(settings, result.report_uri, path)
    except (StorageError, ValueError, OSError) as error:
        raise fail(str(error)) from error
    console.print(figures_table(result))
    show(f"report: {path}")
    show(f"stored: {result.report_uri}")
    position = result.candidate.style_position.tfidf
    summary(
        f"{result.label} on {result.questions} question(s) in {result.duration_s:.0f}s: "
        f"perplexity {result.candidate.perplexity.perplexity:.2f} vs base "
        f"{result.base.perplexity.perplexity:.2f}, style position {_fmt(position, 2)}, "
        f"hit@{result.retrieval.k} {result.retrieval.hit_at_k:.2f}"
    )
