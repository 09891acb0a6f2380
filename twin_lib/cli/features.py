"""``twin crawl`` and ``twin features``: the feature steps run directly in this process.

``twin pipeline run feature --local`` runs the very same steps as KFP components (see
``twin_lib.cli.pipeline``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from twin_lib.cli.context import console, fail, literal, settings_of, summary
from twin_lib.crawl.sources import Source
from twin_lib.domain import Category

if TYPE_CHECKING:
    from twin_lib.steps.crawl import SourceExpansion

SourcesArgument = Annotated[
    list[str],
    typer.Argument(help="URLs, feeds, git repositories, folders or LinkedIn export archives."),
]
AuthorOption = Annotated[str, typer.Option(help="Whose writing this is (stored on every record).")]
CategoryOption = Annotated[
    Category | None, typer.Option(help="Force the category of everything crawled.")
]
WorkdirOption = Annotated[
    Path | None, typer.Option(help="Where intermediate Parquet files and reports are written.")
]


def _sources(urls: list[str], category: Category | None) -> list[Source]:
    return [Source(url=url, category=category) for url in urls]


@contextmanager
def workdir_or_temp(workdir: Path | None) -> Iterator[Path]:
    """The given folder (created if missing) or a new temporary one.

    A temporary folder that is still empty when the command ends (it failed before writing
    anything) is removed, so failed runs leave no litter in the temp directory.
    """
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    directory = Path(tempfile.mkdtemp(prefix="twin-features-"))
    try:
        yield directory
    finally:
        if not any(directory.iterdir()):
            directory.rmdir()


def crawl(
    ctx: typer.Context,
    sources: SourcesArgument,
    author: AuthorOption,
    category: CategoryOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """Crawl sources into an immutable raw-lake snapshot in MinIO."""
    from twin_lib.steps.crawl import crawl_to_lake

    settings = settings_of(ctx)
    with workdir_or_temp(workdir) as directory:
        output = directory / "raw_documents.parquet"
        try:
            result = crawl_to_lake(
                _sources(sources, category),
                author=author,
                minio=settings.minio,
                features=settings.features,
                output=output,
            )
        except RuntimeError as error:
            raise fail(str(error)) from error
    for failure in result.failures:
        console.print(
            f"[yellow]skipped[/] {literal(failure['source_url'])}: {literal(failure['reason'])}"
        )
    for expansion in result.expansions:
        print_expansion(expansion)
    state = "unchanged" if result.unchanged else "written"
    summary(
        f"{result.documents} documents in snapshot {result.snapshot_id} ({state}); "
        f"{result.reused} unchanged since the last crawl (not fetched again); "
        f"{result.syndicated} copies of an article merged; "
        f"{len(result.failures)} failures; local copy {output}"
    )


def print_expansion(expansion: SourceExpansion) -> None:
    """How a web address became pages: found, taken, and each reason pages were left out."""
    console.print(
        f"[bold]{literal(expansion.source)}[/] via {expansion.method}: {expansion.found} pages "
        f"found, {expansion.taken} taken, {sum(expansion.left_out_counts.values())} left out"
    )
    for reason, count in expansion.left_out_counts.items():
        example = next(item.url for item in expansion.left_out if item.reason == reason)
        console.print(f"  {count} left out: {literal(reason)} (e.g. {literal(example)})")
    for note in expansion.tried:
        console.print(f"  note: {literal(note)}")


def features(
    ctx: typer.Context,
    sources: SourcesArgument,
    author: AuthorOption,
    category: CategoryOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """Crawl, validate, clean, chunk, embed and load into Weaviate, in this process."""
    from twin_lib.quality.gate import QualityGateError
    from twin_lib.steps.feature_run import run_feature_steps

    settings = settings_of(ctx)
    with workdir_or_temp(workdir) as directory:
        try:
            metrics = run_feature_steps(
                _sources(sources, category),
                author=author,
                workdir=directory,
                minio=settings.minio,
                weaviate=settings.weaviate,
                features=settings.features,
            )
        except (QualityGateError, RuntimeError, ValueError) as error:
            reports = f" (reports in {directory})" if any(directory.iterdir()) else ""
            raise fail(f"{error}{reports}") from error
    summary(
        f"{int(metrics['documents_loaded'])} documents loaded, "
        f"{int(metrics['documents_unchanged'])} unchanged, "
        f"{int(metrics['documents_deleted'])} deleted; "
        f"{int(metrics['embedding_cache_hits'])} chunks' vectors from the embedding cache, "
        f"{int(metrics['texts_encoded'])} encoded; Weaviate holds "
        f"{int(metrics['collection_size'])} chunks; reports in {directory}"
    )


def forget_source(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="The source exactly as it was crawled.")],
    author: AuthorOption,
) -> None:
    """Delete one source's documents from the feature store, on purpose.

    The sync keeps what failed sources and feeds no longer list; this removes one for good.
    """
    from twin_lib.steps.features import forget_source as forget

    settings = settings_of(ctx)
    try:
        result = forget(
            source,
            author=author,
            minio=settings.minio,
            weaviate=settings.weaviate,
            features=settings.features,
        )
    except ValueError as error:
        raise fail(str(error)) from error
    summary(
        f"forgot {result.origin} of {result.author}: {result.documents} documents and "
        f"{result.chunks} chunks deleted from {settings.weaviate.collection}"
    )


def rebuild_features(
    ctx: typer.Context,
    collection: Annotated[
        str | None,
        typer.Option(help="The collection to rebuild (default: the configured one)."),
    ] = None,
) -> None:
    """Rebuild a Weaviate collection from MinIO alone, encoding only uncached chunks.

    For a Weaviate that lost its data or was replaced: the chunks each document gave and
    their vectors are kept in the features bucket; the collection is dropped and rewritten.
    """
    from twin_lib.steps.features import rebuild_collection
    from twin_lib.storage import StorageError

    settings = settings_of(ctx)
    weaviate = settings.weaviate.model_copy(
        update={"collection": collection or settings.weaviate.collection}
    )
    try:
        result = rebuild_collection(
            minio=settings.minio, weaviate=weaviate, features=settings.features
        )
    except (StorageError, ValueError) as error:
        raise fail(str(error)) from error
    summary(
        f"rebuilt {result.collection}: {result.documents} documents, {result.chunks} chunks; "
        f"{int(result.metrics['embedding_cache_hits'])} vectors from the cache, "
        f"{int(result.metrics['texts_encoded'])} encoded"
    )
