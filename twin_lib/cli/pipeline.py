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
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from twin_lib.cli.context import console, fail, literal, settings_of, show, summary
from twin_lib.cli.features import WorkdirOption, workdir_or_temp
from twin_lib.k8s.submit import SubmitError, parse_params, pipeline_arguments, submit_run
from twin_lib.settings import TwinSettings

app = typer.Typer(help="Run the platform's KFP pipelines.", no_args_is_help=True)


def newest_run(root: Path) -> Path | None:
    """The folder of the newest KFP local run under ``root`` (run folders sort by time)."""
    runs = sorted(path for path in root.iterdir() if path.is_dir())
    return runs[-1] if runs else None


def _local_outputs(root: Path) -> tuple[list[Path], dict[str, float]]:
    """The newest run's HTML reports and merged metrics, as KFP local left them on disk."""
    newest = newest_run(root)
    if newest is None:
        return [], {}
    metrics: dict[str, float] = {}
    for output in sorted(newest.glob("*/executor_output.json")):
        artifacts = json.loads(output.read_text()).get("artifacts", {})
        for artifact in artifacts.get("metrics", {}).get("artifacts", []):
            metrics |= artifact.get("metadata", {})
    return sorted(newest.glob("*/report")), metrics


def settings_fallbacks(settings: TwinSettings) -> dict[str, Any]:
    """Settings groups offered to pipeline parameters of the same name (e.g. ``features``)."""
    return {
        name: value.model_dump(mode="json", exclude_none=True)
        for name in type(settings).model_fields
        if isinstance(value := getattr(settings, name), BaseModel)
    }


def _given_params(
    params_file: Path | None, param: list[str] | None, flags: dict[str, Any]
) -> dict[str, Any]:
    """File, then ``--param`` pairs, then the named flags; later ones win."""
    from_file: dict[str, Any] = {}
    if params_file is not None:
        try:
            from_file = json.loads(params_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise SubmitError(f"--params-file {params_file}: {error}") from error
        if not isinstance(from_file, dict):
            raise SubmitError(f"--params-file {params_file} must hold one JSON object")
    given = {**from_file, **parse_params(param or [])}
    return given | {key: value for key, value in flags.items() if value}


def run_locally(
    name: str, pipeline: Any, arguments: dict[str, Any], root: Path, verbose: bool
) -> tuple[list[Path], dict[str, float]]:
    """Run ``pipeline`` through KFP local execution, one line per step; returns the run's
    HTML reports and merged metrics. The caller exports the settings to the environment."""
    from kfp import local as kfp_local

    from twin_lib.cli.kfp_local import step_progress

    kfp_local.init(runner=kfp_local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    console.print(f"running pipeline {literal(name)} locally; artifacts in {literal(root)}")
    with step_progress(verbose) as progress:
        try:
            pipeline(**arguments)
        except RuntimeError as error:
            failed = progress.results[-1].task if progress.results else name
            for line in progress.tail_lines():
                show(f"    {line}")
            raise fail(
                f"pipeline {name} failed locally at step {failed} (its last output above; "
                f"--verbose shows all, artifacts in {root}): {error}"
            ) from error
    reports, metrics = _local_outputs(root)
    for key, value in sorted(metrics.items()):
        show(f"  {key:<32} {value:g}")
    for report in reports:
        show(f"  report: {report}")
    summary(f"pipeline {name} finished locally; {len(reports)} reports, artifacts in {root}")
    return reports, metrics


@app.command("run")
def run_pipeline(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Pipeline name, e.g. feature.")],
    sources: Annotated[
        list[str] | None,
        typer.Option("--source", help="A source (the `sources` parameter); repeat for more."),
    ] = None,
    author: Annotated[
        str | None, typer.Option(help="Whose writing this is (the `author` parameter).")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(help="Pipeline parameter name=value (JSON values keep their type)."),
    ] = None,
    params_file: Annotated[
        Path | None, typer.Option(help="Pipeline parameters as one JSON object.")
    ] = None,
    local: Annotated[bool, typer.Option(help="Run with KFP local execution.")] = False,
    verbose: Annotated[
        bool, typer.Option(help="With --local: show KFP's full task logs and outputs.")
    ] = False,
    pipeline_root: WorkdirOption = None,
) -> None:
    """Run a pipeline from the catalog locally, or compile and send it to the KFP host.

    Parameters the pipeline declares and no flag sets come from the settings group of the
    same name (e.g. ``features``), else from the pipeline's defaults.
    """
    from twin_lib.k8s.pipelines import load_catalog
    from twin_lib.settings import to_env

    settings = settings_of(ctx)
    catalog = load_catalog()
    if name not in catalog:
        raise fail(f"unknown pipeline {name!r}; known: {', '.join(sorted(catalog))}")
    try:
        given = _given_params(params_file, param, {"sources": sources, "author": author})
        arguments = pipeline_arguments(catalog[name], given, settings_fallbacks(settings))
    except SubmitError as error:
        raise fail(f"pipeline {name}: {error}") from error
    if local:
        os.environ.update(to_env(settings))  # components read endpoints like pods do
        with workdir_or_temp(pipeline_root) as root:
            run_locally(name, catalog[name], arguments, root, verbose)
        return
    if not settings.kfp.host:
        raise fail("no KFP host configured; set TWIN_KFP__HOST or pass --local")
    if (arguments.get("training") or {}).get("launcher") == "local":
        raise fail(
            f"pipeline {name}: training.launcher is 'local', which would train inside a KFP "
            "step pod; set TWIN_TRAINING__LAUNCHER=pytorchjob (or trainjob) for a cluster run"
        )
    import kfp

    from twin_lib.k8s.pipelines import rebuild

    client = kfp.Client(host=settings.kfp.host, namespace=settings.kfp.namespace)
    run = client.create_run_from_pipeline_func(rebuild(catalog[name]), arguments=arguments)
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
