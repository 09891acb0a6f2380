"""``twin crawl`` and ``twin features``: the feature steps run directly in this process.

``twin pipeline run feature --local`` runs the very same steps as KFP components (see
``twin_lib.cli.pipeline``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from twin_lib.cli.context import console, fail, settings_of, summary
from twin_lib.crawl.sources import Source
from twin_lib.domain import Category

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


def workdir_or_temp(workdir: Path | None) -> Path:
    return workdir or Path(tempfile.mkdtemp(prefix="twin-features-"))


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
    output = workdir_or_temp(workdir) / "raw_documents.parquet"
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
        console.print(f"[yellow]skipped[/] {failure['source_url']}: {failure['reason']}")
    state = "unchanged" if result.unchanged else "written"
    summary(
        f"{result.documents} documents in snapshot {result.snapshot_id} ({state}); "
        f"{len(result.failures)} failures; local copy {output}"
    )


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
    directory = workdir_or_temp(workdir)
    try:
        metrics = run_feature_steps(
            _sources(sources, category),
            author=author,
            workdir=directory,
            minio=settings.minio,
            weaviate=settings.weaviate,
            features=settings.features,
        )
    except (QualityGateError, RuntimeError) as error:
        raise fail(f"{error} (reports in {directory})") from error
    summary(
        f"{int(metrics['documents_loaded'])} documents loaded, "
        f"{int(metrics['documents_unchanged'])} unchanged, "
        f"{int(metrics['documents_deleted'])} deleted; Weaviate holds "
        f"{int(metrics['collection_size'])} chunks; reports in {directory}"
    )
