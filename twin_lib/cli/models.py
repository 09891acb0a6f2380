"""``twin models``: the registered models, their status history and lineage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from twin_lib.cli.context import console, fail, settings_of, summary
from twin_lib.registry.models import ModelStatus, ModelVersion

if TYPE_CHECKING:
    from twin_lib.registry.store import ModelRegistry

app = typer.Typer(help="List and inspect registered models.", no_args_is_help=True)


@contextmanager
def _reported() -> Iterator[None]:
    """Registry and storage errors (illegal transitions are ValueErrors) as one failure line.

    The storage clients are imported when a command runs, not when ``twin`` starts.
    """
    from twin_lib.storage import StorageError

    try:
        yield
    except (StorageError, ValueError) as error:
        raise fail(str(error)) from error


def _registry(ctx: typer.Context) -> ModelRegistry:
    from twin_lib.registry.store import ModelRegistry

    settings = settings_of(ctx)
    return ModelRegistry(settings.minio, settings.registry)


def _eval_loss(model: ModelVersion) -> str:
    base, final = model.metrics.get("base_eval_loss"), model.metrics.get("final_eval_loss")
    if final is None:
        return "-"
    return f"{final:.3f}" + (f" (base {base:.3f})" if base is not None else "")


@app.command("list")
def list_models(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this model's versions.")] = None,
) -> None:
    """Every registered version, oldest first, with status and held-out loss."""
    registry = _registry(ctx)
    with _reported():
        names = [name] if name else registry.models()
        versions = [v for n in names for v in registry.list_versions(n)]
    table = Table("model", "version", "status", "created", "base model", "eval loss", "precision")
    for v in versions:
        table.add_row(
            v.name,
            v.version,
            v.status,
            v.created.strftime("%Y-%m-%d %H:%M"),
            v.base_model,
            _eval_loss(v),
            v.precision or "-",
        )
    console.print(table)
    summary(f"{len(versions)} version(s) of {len(names)} model(s)")


@app.command()
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name, e.g. twin.")],
    version: Annotated[
        str | None, typer.Argument(help="Version, e.g. v0003 (default: newest).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metadata as JSON.")] = False,
) -> None:
    """One version: metadata, status history and lineage down to the source URLs."""
    from twin_lib.steps.registry import model_lineage

    settings = settings_of(ctx)
    with _reported():
        lineage = model_lineage(settings.minio, name, version, settings.registry)
    model = lineage.model
    if as_json:
        console.print_json(lineage.model_dump_json())
        return
    console.print(f"[bold]{model.name} {model.version}[/] — {model.status}")
    facts = Table.grid(padding=(0, 2))
    for label, value in (
        ("created", model.created.isoformat(timespec="seconds")),
        ("base model", model.base_model),
        ("outputs", model.output_uri),
        ("merged", model.merged_uri),
        ("precision", model.precision or "-"),
        ("eval loss", _eval_loss(model)),
        ("code", f"{model.code.package} {model.code.version} {model.code.git_commit or ''}"),
        ("launch", json.dumps(model.launch, sort_keys=True) if model.launch else "-"),
    ):
        facts.add_row(label, value)
    console.print(facts)
    history = Table("at", "status", "from", "by", "reason", title="status history")
    for change in model.history:
        history.add_row(
            change.at.isoformat(timespec="seconds"),
            change.status,
            change.previous or "-",
            change.by,
            change.reason,
        )
    console.print(history)
    if model.deployments:
        rollouts = Table("at", "action", "service", "traffic", "by", "reason", title="deployments")
        for event in model.deployments:
            rollouts.add_row(
                event.at.isoformat(timespec="seconds"),
                event.action,
                f"{event.namespace}/{event.isvc}",
                "-" if event.traffic_percent is None else f"{event.traffic_percent}%",
                event.by,
                event.reason,
            )
        console.print(rollouts)
    datasets = Table("kind", "snapshot", "collection", "feature version", "chunks", title="data")
    for d in lineage.datasets:
        datasets.add_row(
            d.kind, d.dataset_snapshot_id, d.collection, d.feature_version, str(len(d.chunk_ids))
        )
    console.print(datasets)
    console.print("raw snapshots: " + (", ".join(lineage.raw_snapshot_ids) or "-"))
    console.print("sources:")
    for url in lineage.source_urls:
        console.print(f"  {url}")
    summary(f"{model.name} {model.version}: {len(lineage.source_urls)} source URL(s)")


@app.command()
def status(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version, e.g. v0003.")],
    new_status: Annotated[ModelStatus, typer.Argument(help="The new status.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the history).")],
    by: Annotated[str, typer.Option(help="Who decided (recorded in the history).")],
) -> None:
    """Record a decision: approve, reject, mark deployed or retire a version."""
    with _reported():
        model = _registry(ctx).transition(name, version, new_status, by=by, reason=reason)
    summary(f"{model.name} {model.version} is now {model.status}")
