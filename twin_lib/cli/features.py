"""``twin crawl``, ``twin features`` and ``twin pipeline run feature``.

``crawl`` and ``features`` run the steps in this process; ``pipeline run feature --local``
runs the same steps as KFP components through KFP local execution, and without ``--local``
submits the pipeline to the KFP host from settings.
"""

from __future__ import annotations

import os
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


def _workdir(workdir: Path | None) -> Path:
    return workdir or Path(tempfile.mkdtemp(prefix="twin-features-"))


def crawl(
    ctx: typer.Context,
    sources: SourcesArgument,
    author: AuthorOption,
    category: CategoryOption = None,
    workdir: WorkdirOption = None,
) -> None:
    """Crawl sources into an immutable raw-lake snapshot in MinIO."""
    from twin_lib.crawl.lake import crawl_to_lake

    settings = settings_of(ctx)
    output = _workdir(workdir) / "raw_documents.parquet"
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
    from twin_lib.features.run import run_feature_steps
    from twin_lib.quality.gate import QualityGateError

    settings = settings_of(ctx)
    directory = _workdir(workdir)
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


pipeline_app = typer.Typer(help="Run the platform's KFP pipelines.", no_args_is_help=True)


@pipeline_app.command("run")
def run_pipeline(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Pipeline name, e.g. feature.")],
    sources: Annotated[list[str], typer.Option("--source", help="A source; repeat for more.")],
    author: AuthorOption,
    local: Annotated[bool, typer.Option(help="Run with KFP local execution.")] = False,
    pipeline_root: WorkdirOption = None,
) -> None:
    """Run a pipeline from the catalog locally or submit it to the KFP host."""
    from pipelines.catalog import PIPELINES
    from twin_lib.settings import to_env

    settings = settings_of(ctx)
    if name not in PIPELINES:
        raise fail(f"unknown pipeline {name!r}; known: {', '.join(sorted(PIPELINES))}")
    arguments = {
        "sources": sources,
        "author": author,
        "features": settings.features.model_dump(mode="json"),
    }
    if local:
        from kfp import local as kfp_local

        os.environ.update(to_env(settings))  # components read endpoints like pods do
        root = _workdir(pipeline_root)
        kfp_local.init(runner=kfp_local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
        PIPELINES[name](**arguments)
        summary(f"pipeline {name} finished locally; artifacts (reports, metrics) in {root}")
        return
    if not settings.kfp.host:
        raise fail("no KFP host configured; set TWIN_KFP__HOST or pass --local")
    import kfp

    client = kfp.Client(host=settings.kfp.host, namespace=settings.kfp.namespace)
    run = client.create_run_from_pipeline_func(PIPELINES[name], arguments=arguments)
    summary(f"submitted pipeline {name} as run {run.run_id} to {settings.kfp.host}")
