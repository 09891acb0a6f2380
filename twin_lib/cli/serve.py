"""``twin serve`` and ``twin ask``: the twin's model server on this machine, and a question
to any served twin over REST."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from twin_lib.cli.context import console, fail, literal, settings_of, show, summary
from twin_lib.cli.stack import duration
from twin_lib.serving.client import ClientAnswer, TwinClient, TwinClientError
from twin_lib.stack.model_server import LocalModelServer, ModelServerError, ModelServerStatus
from twin_lib.storage import StorageError

app = typer.Typer(
    help="Serve the twin locally: the KServe predictor as a process on loopback.",
    no_args_is_help=True,
)

# Generation has its own server-side timeout; the client waits a little longer so the
# server's error, not a client timeout, is what the user sees.
_CLIENT_GRACE_S = 30.0


def _server(ctx: typer.Context) -> LocalModelServer:
    return LocalModelServer(settings_of(ctx))


def _print_status(status: ModelServerStatus) -> None:
    table = Table("state", "model", "status", "served as", "url", "pid", "uptime")
    state = (
        "[dim]stopped[/]"
        if not status.running
        else "[green]ready[/]"
        if status.ready
        else "[yellow]not ready[/]"
    )
    table.add_row(
        state,
        literal(status.model or "-"),
        status.status or "-",
        literal(status.served_name),
        literal(status.url),
        str(status.pid) if status.pid else "-",
        duration(status.uptime_s),
    )
    console.print(table)


@app.command()
def up(
    ctx: typer.Context,
    version: Annotated[
        str | None, typer.Option(help="Registry version to serve (default: newest approved).")
    ] = None,
    allow_unapproved: Annotated[
        bool, typer.Option("--allow-unapproved", help="Serve a candidate (local trials only).")
    ] = False,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="REST port (default: serving.http_port).")
    ] = None,
) -> None:
    """Serve a registered model version on loopback and wait until it answers."""
    from twin_lib.steps.serving import (  # registry and storage clients: only when serving
        FeatureVersionMismatchError,
        ModelNotServableError,
        resolve_served_model,
    )

    settings = settings_of(ctx)
    if version is not None:
        settings.serving.version = version
    if allow_unapproved:
        settings.serving.allow_unapproved = True
    server = LocalModelServer(settings)
    if running := server.running():
        raise fail(
            f"a model server already runs (PID {running.pid}, {running.model} at "
            f"{running.url}); stop it first with `twin serve down`"
        )
    started = time.monotonic()
    try:
        model = resolve_served_model(settings)
        show(f"starting {model.label} ({model.status}), log: {server.log_file}")
        status = server.up(model, port=port)
    except (
        ModelNotServableError,
        FeatureVersionMismatchError,
        ModelServerError,
        StorageError,
    ) as error:
        raise fail(str(error)) from error
    _print_status(status)
    summary(
        f"serving {model.label} as {status.served_name!r} at {status.url} "
        f'(ready in {time.monotonic() - started:.1f}s); ask with `twin ask "..."`'
    )


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the local model server by its recorded PID."""
    stopped = _server(ctx).down()
    summary(
        f"stopped the model server (PID {stopped.pid}, {stopped.model})"
        if stopped
        else "no model server was running"
    )


@app.command()
def status(ctx: typer.Context) -> None:
    """Show the local model server: state, model version, URL, PID and uptime."""
    current = _server(ctx).status()
    _print_status(current)
    if not current.running:
        summary("no model server is running; start one with `twin serve up`", ok=False)
    else:
        readiness = "ready" if current.ready else "running, not ready yet"
        summary(f"{current.model} {readiness} at {current.url}", ok=current.ready)


@app.command()
def logs(
    ctx: typer.Context,
    lines: Annotated[int, typer.Option("--lines", "-n")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
) -> None:
    """Print the last lines of the model server's log, optionally following it."""
    server = _server(ctx)
    if not server.log_file.exists():
        raise fail(f"no model server log yet at {server.log_file}; start one with `twin serve up`")
    show(server.tail(lines))
    if follow:
        try:
            for line in server.follow():
                show(line)
        except KeyboardInterrupt:
            pass
    summary(f"model server log: {server.log_file}")


def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="What to ask the twin.")],
    url: Annotated[
        str | None,
        typer.Option(help="The twin's root URL (default: the server of `twin serve up`)."),
    ] = None,
    stream: Annotated[bool, typer.Option(help="Print the answer as it is written.")] = False,
    max_tokens: Annotated[
        int | None, typer.Option(min=1, help="Longest answer, in tokens.")
    ] = None,
) -> None:
    """Ask a served twin a question; print its answer and the sources it drew on."""
    settings = settings_of(ctx)
    local = LocalModelServer(settings)
    record = local.running()
    target = url or (record.url if record else local.url())
    timeout_s = settings.serving.generation_timeout_s + _CLIENT_GRACE_S
    try:
        with TwinClient(target, model=settings.serving.served_name, timeout_s=timeout_s) as client:
            if stream:
                answer = _streamed(client, question, max_tokens)
            else:
                answer = client.ask(question, max_tokens=max_tokens)
                show(answer.text.strip() or "(the model wrote only whitespace)")
    except TwinClientError as error:
        raise fail(str(error)) from error
    print_sources(answer)
    # The local server is pinned to one version; another server may say which it runs.
    pinned = record.model if record and client.base_url == record.url else None
    version = answer.model_version or pinned or answer.model
    summary(
        f"answer {answer.id} from {version} in {answer.latency_ms:.0f} ms "
        f"({len(answer.sources)} source(s), {answer.completion_tokens or '?'} tokens)"
    )


def rate(
    ctx: typer.Context,
    answer_id: Annotated[str, typer.Argument(help="The answer's id, as `twin ask` printed it.")],
    rating: Annotated[str, typer.Argument(help="up or down.")],
    comment: Annotated[str | None, typer.Option(help="What was good or wrong.")] = None,
    url: Annotated[
        str | None,
        typer.Option(help="The twin's root URL (default: the server of `twin serve up`)."),
    ] = None,
) -> None:
    """Rate one of the twin's answers (thumbs up or down, with a comment) by its answer id."""
    if rating not in ("up", "down"):
        raise fail(f"rating {rating!r}: give up or down")
    settings = settings_of(ctx)
    local = LocalModelServer(settings)
    record = local.running()
    target = url or (record.url if record else local.url())
    try:
        with TwinClient(target, model=settings.serving.served_name) as client:
            receipt = client.rate(answer_id, rating, comment=comment)
    except TwinClientError as error:
        raise fail(str(error)) from error
    summary(f"rated answer {receipt.answer_id} {receipt.rating} (rating {receipt.id})")


def _streamed(client: TwinClient, question: str, max_tokens: int | None) -> ClientAnswer:
    answer: ClientAnswer | None = None
    for event in client.ask_stream(question, max_tokens=max_tokens):
        if isinstance(event, ClientAnswer):
            answer = event
        else:
            console.print(event, end="", markup=False, highlight=False, soft_wrap=True)
    console.print()
    assert answer is not None  # ask_stream always ends with the answer or raises
    return answer


def print_sources(answer: ClientAnswer) -> None:
    if not answer.sources:
        show("(no sources: the twin found none of the author's text for this question)")
        return
    table = Table("#")
    table.add_column("url", overflow="fold")  # a URL is data: wrapped whole, never cut short
    table.add_column("title")
    table.add_column("chunk id", no_wrap=True)
    table.add_column("score", justify="right")
    for number, source in enumerate(answer.sources, 1):
        table.add_row(
            str(number),
            literal(source.url),
            literal(source.title or "-"),
            literal(source.chunk_id),
            f"{source.score:.3f}",
        )
    console.print(table)
