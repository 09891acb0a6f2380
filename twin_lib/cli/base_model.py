"""``twin base-model``: build the offline base model into the machine's cache, or show it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from twin_lib.cli.context import console, fail, settings_of, summary
from twin_lib.settings import BaseModelRecipe

app = typer.Typer(
    help="The small base model built offline from an openly licensed corpus (once per machine).",
    no_args_is_help=True,
)

TinyOption = Annotated[
    bool, typer.Option(help="The tiny recipe of the tests (seconds, not minutes; no quality).")
]


def _recipe(ctx: typer.Context, tiny: bool, **overrides: object) -> BaseModelRecipe:
    """The configured recipe (``TWIN_TRAINING__BASE_RECIPE__*``), or the tiny one, with the
    flags that were given, validated."""
    recipe = BaseModelRecipe.tiny() if tiny else settings_of(ctx).training.base_recipe
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return BaseModelRecipe.model_validate({**recipe.model_dump(), **given})
    except ValidationError as error:
        raise fail(f"invalid base-model option: {error}") from error


@app.command()
def build(
    ctx: typer.Context,
    tiny: TinyOption = False,
    time_budget_s: Annotated[
        float | None, typer.Option(help="Seconds of pre-training (default: the recipe's).")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="Torch threads (default: all).")] = None,
    precision: Annotated[
        str | None, typer.Option(help="auto, bf16 or fp32 (default: the recipe's).")
    ] = None,
) -> None:
    """Build the base model if this machine has none for the recipe; print where it is."""
    from twin_lib.training.base_model import ensure_base_model, read_record

    recipe = _recipe(ctx, tiny, time_budget_s=time_budget_s, threads=threads, precision=precision)
    path = ensure_base_model(recipe, settings_of(ctx).stack.cache_dir)
    record = read_record(path)
    _print_record(path)
    summary(
        f"base model at {path} (built in {record.build_seconds:.0f} s, validation perplexity "
        f"{record.validation_perplexity:.1f} vs unigram {record.unigram_perplexity:.1f})"
    )


@app.command()
def show(
    ctx: typer.Context,
    path: Annotated[
        Path | None, typer.Argument(help="A model directory (default: the cached build).")
    ] = None,
    tiny: TinyOption = False,
) -> None:
    """How a built base model was made: corpus, shape, budget, losses, build time."""
    from twin_lib.training.base_model import base_model_dir

    model_dir = path or base_model_dir(_recipe(ctx, tiny), settings_of(ctx).stack.cache_dir)
    try:
        _print_record(model_dir)
    except FileNotFoundError as error:
        raise fail(str(error)) from error
    summary(f"base model at {model_dir}")


def _print_record(model_dir: Path) -> None:
    from twin_lib.training.base_model import read_record

    record = read_record(model_dir)
    table = Table("field", "value", show_header=False)
    rows = {
        "key": record.key,
        "corpus": f"{record.corpus.provenance} ({record.corpus.licence})",
        "corpus size": f"{record.corpus.chars:,} chars, {record.corpus.train_tokens:,} tokens",
        "parameters": f"{record.parameters:,}",
        "precision": f"{record.precision} on {record.threads} thread(s)",
        "pre-training": f"{record.steps} steps, {record.tokens_seen:,} tokens, "
        f"{record.pretrain_seconds:.0f} s (stopped by {record.stopped_by})",
        "build time": f"{record.build_seconds:.0f} s",
        "validation loss": f"{record.validation_loss_initial:.3f} (random init) -> "
        f"{record.validation_loss:.3f}",
        "validation perplexity": f"{record.validation_perplexity:.1f} "
        f"(unigram baseline {record.unigram_perplexity:.1f})",
        "created": record.created.isoformat(timespec="seconds"),
    }
    for name, value in rows.items():
        table.add_row(name, value)
    console.print(table)
