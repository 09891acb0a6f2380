"""``twin snapshots``: see which immutable dataset snapshots exist and what they hold."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from twin_lib.cli.context import console, fail, settings_of, summary
from twin_lib.storage.errors import StorageError

if TYPE_CHECKING:
    from twin_lib.storage import SnapshotStore

app = typer.Typer(help="List and inspect dataset snapshots in MinIO.", no_args_is_help=True)

BucketOption = Annotated[
    str | None, typer.Option(help="Bucket to look in (default: the raw-lake bucket).")
]


def _store(ctx: typer.Context, bucket: str | None) -> SnapshotStore:
    from twin_lib.storage import ObjectStore, SnapshotStore

    settings = settings_of(ctx)
    return SnapshotStore(ObjectStore(settings.minio), bucket or settings.minio.raw_bucket)


@app.command("list")
def list_snapshots(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Argument(help="Dataset name, e.g. raw-documents.")],
    bucket: BucketOption = None,
) -> None:
    """Snapshots of one dataset, oldest first, with their lineage."""
    try:
        manifests = _store(ctx, bucket).list(dataset)
    except StorageError as error:
        raise fail(str(error)) from error
    table = Table("id", "created", "records", "counts", "parent")
    for m in manifests:
        counts = ", ".join(f"{k}={v}" for k, v in sorted(m.counts.items()))
        table.add_row(
            m.id,
            m.created.strftime("%Y-%m-%d %H:%M:%S"),
            str(m.record_count),
            counts or "-",
            m.parent or "-",
        )
    console.print(table)
    summary(f"{len(manifests)} snapshot(s) of {dataset}")


@app.command()
def show(
    ctx: typer.Context,
    snapshot: Annotated[str, typer.Argument(help="Snapshot id, e.g. raw-documents-<hash>.")],
    bucket: BucketOption = None,
) -> None:
    """The full manifest of one snapshot (schema, files and their hashes)."""
    try:
        manifest = _store(ctx, bucket).get(snapshot)
    except (StorageError, ValueError) as error:
        raise fail(str(error)) from error
    console.print_json(manifest.model_dump_json())
    summary(f"{manifest.id}: {manifest.record_count} records in {len(manifest.files)} file(s)")
