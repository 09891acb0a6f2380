"""The ``twin`` command line: one sub-app per area, all sharing one settings object."""

from __future__ import annotations

import typer

from twin_lib.cli import (
    base_model,
    demo,
    deploy,
    evaluate,
    features,
    feedback,
    manifests,
    models,
    pipeline,
    promote,
    serve,
    snapshots,
    stack,
)
from twin_lib.cli.context import main_callback

app = typer.Typer(
    name="twin",
    help="Build, run and serve an LLM twin on Kubeflow, locally or on a cluster.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.callback()(main_callback)
app.add_typer(stack.app, name="stack")
app.add_typer(snapshots.app, name="snapshots")
app.add_typer(manifests.app, name="manifests")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(models.app, name="models")
app.add_typer(base_model.app, name="base-model")
app.add_typer(serve.app, name="serve")
app.add_typer(promote.app, name="reviews")
app.add_typer(feedback.app, name="feedback")
app.command()(features.crawl)
app.command()(features.features)
app.command("forget-source")(features.forget_source)
app.command("rebuild-features")(features.rebuild_features)
app.command()(serve.ask)
app.command()(serve.rate)
app.command()(deploy.deploy)
app.command()(deploy.rollback)
app.command()(evaluate.evaluate)
app.command()(promote.promote)
app.command()(demo.demo)
