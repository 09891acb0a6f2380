"""``twin pipeline run | submit``: start the platform's KFP pipelines.

``run --local`` executes a pipeline through KFP local execution against the local stack: the
same components, the same code, only *where* each step runs changes. ``run`` without
``--local`` compiles the pipeline here and sends it to the KFP host; ``submit`` starts the
newest *registered* version (what ``kubectl apply`` put on the cluster) and is what the run
Jobs in ``manifests/runs`` execute.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Annotated

import typer

from twin_lib.cli.context import console, fail, settings_of, summary
from twin_lib.cli.features import AuthorOption, WorkdirOption, workdir_or_temp
from twin_lib.k8s.submit import SubmitError, parse_params, submit_run

app = typer.Typer(help="Run the platform's KFP pipelines.", no_args_is_help=True)


def _local_outputs(root: Path) -> tuple[list[Path], dict[str, float]]:
    """The newest run's HTML reports and merged metrics, as KFP local left them on disk."""
    runs = sorted(path for path in root.iterdir() if path.is_dir())
    if not runs:
        return [], {}
    newest = runs[-1]
    metrics: dict[str, float] = {}
    for output in sorted(newest.glob("*/executor_output.json")):
        artifacts = json.loads(output.read_text()).get("artifacts", {})
        for artifact in artifacts.get("metrics", {}).get("artifacts", []):
            metrics |= artifact.get("metadata", {})
    return sorted(newest.glob("*/report")), metrics


@app.command("run")
def run_pipeline(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Pipeline name, e.g. feature.")],
    sources: Annotated[list[str], typer.Option("--source", help="A source; repeat for more.")],
    author: AuthorOption,
    local: Annotated[bool, typer.Option(help="Run with KFP local execution.")] = False,
    pipeline_root: WorkdirOption = None,
) -> None:
    """Run a pipeline from the catalog locally, or compile and send it to the KFP host."""
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

        # KFP warns that each step names a non-Python base image; that image is this very
        # environment packaged (images/components), so running in-process is what it would do.
        warnings.filterwarnings(
            "ignore", message=".*non-Python base image", category=RuntimeWarning
        )
        os.environ.update(to_env(settings))  # components read endpoints like pods do
        root = workdir_or_temp(pipeline_root)
        kfp_local.init(runner=kfp_local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
        try:
            PIPELINES[name](**arguments)
        except RuntimeError as error:
            raise fail(f"pipeline {name} failed locally: {error} (artifacts in {root})") from error
        reports, metrics = _local_outputs(root)
        for key, value in sorted(metrics.items()):
            console.print(f"  {key:<32} {value:g}")
        for report in reports:
            console.print(f"  report: {report}")
        summary(f"pipeline {name} finished locally; {len(reports)} reports, artifacts in {root}")
        return
    if not settings.kfp.host:
        raise fail("no KFP host configured; set TWIN_KFP__HOST or pass --local")
    import kfp

    client = kfp.Client(host=settings.kfp.host, namespace=settings.kfp.namespace)
    run = client.create_run_from_pipeline_func(PIPELINES[name], arguments=arguments)
    summary(f"submitted pipeline {name} as run {run.run_id} to {settings.kfp.host}")


@app.command()
def submit(
    ctx: typer.Context,
    pipeline: Annotated[str, typer.Argument(help="Catalog key, e.g. feature.")],
    param: Annotated[
        list[str] | None, typer.Option(help="Pipeline argument name=value (repeatable).")
    ] = None,
    params_json: Annotated[
        str, typer.Option(help="Pipeline arguments as one JSON object (what run Jobs pass).")
    ] = "{}",
    experiment: Annotated[str, typer.Option(help="KFP experiment to file the run under.")] = (
        "llm-twin"
    ),
) -> None:
    """Run the newest registered version of a pipeline with the given arguments."""
    try:
        params = {**json.loads(params_json), **parse_params(param or [])}
        run_id = submit_run(settings_of(ctx), pipeline, params, experiment)
    except json.JSONDecodeError as error:
        raise fail(f"--params-json is not a JSON object: {error}") from error
    except SubmitError as error:
        raise fail(str(error)) from error
    summary(f"started run {run_id} of {pipeline}")
