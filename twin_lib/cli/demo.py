"""``twin demo``: the README's main job, the whole loop on this machine in one command.

It brings up the local stack, publishes the bundled corpus the way a user's sources look
(articles served over loopback HTTP, plus a git repository), runs the ``llm-twin`` pipeline
(features, datasets, training, evaluation, review request) and the ``promote`` pipeline (the
gate, then a local deployment) through KFP local execution, asks the deployed twin a question
over REST and ends with a summary. A second run reuses what did not change: the crawl finds
the same documents, the datasets the same snapshots, training the version already trained
from them, evaluation its stored figures; a version decided before is not decided again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from twin_lib.cli.context import console, fail, settings_of, show, summary
from twin_lib.cli.pipeline import newest_run, run_locally, settings_fallbacks
from twin_lib.cli.promote import checks_table
from twin_lib.cli.serve import print_sources
from twin_lib.demo.corpus import AUTHOR, load_chapters, write_articles
from twin_lib.demo.plan import demo_settings, demo_workdir
from twin_lib.demo.sources import ArticleServer, git_repository
from twin_lib.registry.models import ModelStatus, ModelVersion
from twin_lib.settings import TwinSettings, to_env

STAGES = ("stack", "sources", "llm-twin", "promote", "serve", "ask")


class _Stages:
    """``[n/6] name`` before each stage and its duration after: where the time goes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, what: str) -> Iterator[None]:
        console.rule(f"[bold][{STAGES.index(name) + 1}/{len(STAGES)}] {name}[/]: {what}")
        started = time.monotonic()
        yield
        self.seconds[name] = time.monotonic() - started
        show(f"{name} took {self.seconds[name]:.1f}s")


def _task_output(root: Path, task: str) -> str:
    """A task's returned string from the newest local run under ``root``."""
    newest = newest_run(root)
    assert newest is not None  # called after a run that finished
    output = json.loads((newest / task / "executor_output.json").read_text())
    return str(output["parameterValues"]["Output"])


def _run(settings: TwinSettings, name: str, given: dict, root: Path, verbose: bool) -> list[Path]:
    from twin_lib.k8s.pipelines import load_catalog
    from twin_lib.k8s.submit import pipeline_arguments

    pipeline = load_catalog()[name]
    arguments = pipeline_arguments(pipeline, given, settings_fallbacks(settings))
    root.mkdir(parents=True, exist_ok=True)
    reports, _ = run_locally(name, pipeline, arguments, root, verbose)
    return reports


def _publish_sources(settings: TwinSettings, workdir: Path) -> tuple[list[str], str | None]:
    demo = settings.demo
    chapters = load_chapters(demo.web_chapters + demo.git_chapters)
    pages = write_articles(chapters[: demo.web_chapters], workdir / "site")
    repo = workdir / "repository"
    head = git_repository(chapters[demo.web_chapters :], repo) if demo.git_chapters else None
    show(
        f"{len(pages)} chapters as web articles in {workdir / 'site'}"
        + (f", {demo.git_chapters} in the git repository {repo} (head {head[:12]})" if head else "")
    )
    return pages, (str(repo) if head else None)


def _promote(
    settings: TwinSettings, model: ModelVersion, root: Path, verbose: bool
) -> ModelVersion:
    from twin_lib.registry.store import ModelRegistry

    if model.status != ModelStatus.CANDIDATE:
        show(f"{model.name} {model.version} is {model.status} already: nothing to decide")
        return model
    given = {"version": model.version, "model_name": model.name, "deploy_target": "local"}
    _run(settings, "promote", given, root, verbose)
    return ModelRegistry(settings.minio, settings.registry).get(model.name, model.version)


def _serving_url(settings: TwinSettings, model: ModelVersion) -> str | None:
    """The local model server's URL once it serves ``model`` (started here if it must be);
    None when the version is not deployed and another deployed version does not serve."""
    from twin_lib.stack.model_server import LocalModelServer
    from twin_lib.steps.serving import resolve_served_model

    server = LocalModelServer(settings)
    record = server.running()
    label = f"{model.name}/{model.version}"
    if model.status != ModelStatus.DEPLOYED:
        if record is not None:
            show(f"{label} is {model.status}; the server keeps serving {record.model}")
            return record.url
        show(f"{label} is {model.status} and nothing else is deployed: nothing serves")
        return None
    if record is not None and record.model == label:
        show(f"the model server at {record.url} already serves {label}")
        return record.url
    if record is not None:
        server.down()
    serving = settings.serving.model_copy(
        update={"model_name": model.name, "version": model.version}
    )
    status = server.up(resolve_served_model(settings.model_copy(update={"serving": serving})))
    show(f"started the model server for {label} at {status.url}")
    return status.url


def _figures_table(settings: TwinSettings, model: ModelVersion) -> Table | None:
    """The twin beside its base model, figure by figure, as the evaluation measured them."""
    from twin_lib.steps.evaluation import read_evaluation

    if not model.evaluation:
        return None
    metrics = read_evaluation(settings, model.name, model.version).metrics()
    table = Table("figure", "twin", "base", title=f"evaluation of {model.name} {model.version}")
    for key in sorted(metrics):
        if key.startswith("twin_"):
            figure = key.removeprefix("twin_")
            table.add_row(figure, _fmt(metrics[key]), _fmt(metrics.get(f"base_{figure}")))
    for key in ("retrieval_hit_at_k", "retrieval_mrr"):
        table.add_row(key, _fmt(metrics.get(key)), "")
    return table


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def demo(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option(help="Show KFP's full task logs and outputs.")] = False,
) -> None:
    """Run the whole loop on the bundled corpus and ask the deployed twin a question."""
    from twin_lib.registry.store import ModelRegistry
    from twin_lib.serving.client import TwinClient, TwinClientError
    from twin_lib.stack.binaries import StackError
    from twin_lib.stack.supervisor import LocalStack
    from twin_lib.steps.promotion import read_decision

    started = time.monotonic()
    settings = demo_settings(settings_of(ctx))
    workdir = demo_workdir(settings)
    kfp_root = workdir / "kfp"
    stages = _Stages()
    with stages.stage("stack", "MinIO and Weaviate on loopback"):
        try:
            LocalStack(settings).up()
        except StackError as error:
            raise fail(str(error)) from error
    with stages.stage("sources", "the King James Version as a user's writing"):
        pages, repository = _publish_sources(settings, workdir)
    os.environ.update(to_env(settings))  # KFP's task processes read the settings like pods do
    name = settings.serving.model_name or settings.registry.default_model
    with ArticleServer(workdir / "site", port=settings.demo.http_port) as articles:
        # The blog's home page, as its author would give it: the crawl finds the articles.
        sources = [articles.base_url, *([repository] if repository else [])]
        show(f"sources: {', '.join(sources)}")
        with stages.stage("llm-twin", f"{len(pages)} articles and a repository to a candidate"):
            given = {"sources": sources, "author": AUTHOR, "model_name": name}
            reports = _run(settings, "llm-twin", given, kfp_root / "llm-twin", verbose)
    registry = ModelRegistry(settings.minio, settings.registry)
    version = _task_output(kfp_root / "llm-twin", "register")
    model = registry.get(name, version)
    with stages.stage("promote", f"the gate on {name} {version}"):
        model = _promote(settings, model, kfp_root / "promote", verbose)
    with stages.stage("serve", "the approved twin on the local model server"):
        url = _serving_url(settings, model)
    answer = None
    with stages.stage("ask", settings.demo.question):
        if url is not None:
            try:
                with TwinClient(url, model=settings.serving.served_name) as client:
                    answer = client.ask(settings.demo.question)
            except TwinClientError as error:
                raise fail(str(error)) from error
            show(answer.text.strip() or "(the model wrote only whitespace)")
            print_sources(answer)
    if (figures := _figures_table(settings, model)) is not None:
        console.print(figures)
    if (decision := read_decision(settings, model.version, name=name)) is not None:
        console.print(checks_table(decision.checks, f"gate: {decision.outcome}"))
        show(decision.reason)
    for report in reports:
        show(f"report: {report}")
    show(f"evaluation report: {model.evaluation.get('report_uri', '-')}")
    timing = ", ".join(f"{stage} {seconds:.0f}s" for stage, seconds in stages.seconds.items())
    show(f"time: {timing}")
    endpoint = f"served at {url}/openai/v1" if url else "not served"
    summary(
        f"demo done in {(time.monotonic() - started) / 60:.1f} min: {name} {model.version} is "
        f'{model.status}, {endpoint}; ask more with `twin ask "..."`'
        + (f" (answer {answer.id})" if answer else "")
    )
