"""What every command shares: settings built once from env/.env plus global flags, and
the one-line summary each command ends with."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from twin_lib.logs import configure_logging
from twin_lib.settings import TwinSettings, load_settings

# No emoji codes: ":name:" inside a path or an IPv6 address must print as written.
console = Console(width=None if sys.stdout.isatty() else 160, emoji=False)


def main_callback(
    ctx: typer.Context,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where the local stack keeps data, logs and PID files.")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = None,
    json_logs: Annotated[bool, typer.Option(help="Log one JSON object per line.")] = False,
) -> None:
    settings = load_settings()
    if state_dir is not None:
        settings.stack.state_dir = state_dir
    configure_logging(log_level or settings.log_level, as_json=json_logs or settings.log_json)
    ctx.obj = settings


def settings_of(ctx: typer.Context) -> TwinSettings:
    settings = ctx.find_root().obj
    assert isinstance(settings, TwinSettings)
    return settings


def literal(text: object) -> str:
    """``text`` as console markup that prints exactly as written.

    Messages carry endpoints, paths and server errors: rich would take ``[fd00::2]`` or
    ``s3://bucket/[draft]/key`` for a style tag and silently drop it.
    """
    return escape(str(text))


def show(text: object) -> None:
    """Print a line of data (a path, an endpoint, a log line) verbatim."""
    console.print(str(text), markup=False, highlight=False, soft_wrap=True)


def summary(text: str, *, ok: bool = True) -> None:
    """The last line of every command: what it did, in one sentence, on one line."""
    mark = "[bold green]✔[/]" if ok else "[bold red]✘[/]"
    console.print(f"{mark} {literal(text)}", soft_wrap=True)


def fail(text: str) -> typer.Exit:
    summary(text, ok=False)
    return typer.Exit(code=1)
