"""``twin pipeline submit``: start a KFP run of a registered pipeline (used by manifests/runs)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from twin_lib.cli.context import fail, settings_of, summary
from twin_lib.k8s.submit import SubmitError, parse_params, submit_run

app = typer.Typer(help="Start runs of the registered pipelines.", no_args_is_help=True)


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
