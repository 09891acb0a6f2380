"""``twin stack``: run the real MinIO and Weaviate servers locally (and Argilla, on request)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from twin_lib.cli.context import console, fail, literal, settings_of, show, summary
from twin_lib.stack import (
    ALL_SERVICES,
    ARGILLA_SERVICES,
    SERVICES,
    LocalStack,
    ServiceStatus,
    StackError,
)

app = typer.Typer(
    help="Start, inspect and stop the local MinIO + Weaviate stack (+ Argilla with --with).",
    no_args_is_help=True,
)

OPTIONAL = {"argilla": ARGILLA_SERVICES}
WithOption = Annotated[
    list[str] | None,
    typer.Option(
        "--with",
        help="also the optional group: argilla (server, worker, OpenSearch, Redis)",
    ),
]


def _services(extra: list[str] | None) -> tuple[str, ...]:
    unknown = sorted(set(extra or ()) - set(OPTIONAL))
    if unknown:
        raise fail(f"unknown --with {', '.join(unknown)}; choose from {', '.join(OPTIONAL)}")
    return SERVICES + tuple(name for group in extra or () for name in OPTIONAL[group])


def _stack(ctx: typer.Context) -> LocalStack:
    return LocalStack(settings_of(ctx))


def _print_status(statuses: list[ServiceStatus]) -> None:
    table = Table("service", "state", "version", "endpoint", "pid", "uptime", "data")
    for s in statuses:
        table.add_row(
            s.name,
            "[green]running[/]" if s.running else "[dim]stopped[/]",
            s.version or "-",
            literal(s.endpoint),
            str(s.pid) if s.pid else "-",
            duration(s.uptime_s),
            _size(s.data_bytes),
        )
    console.print(table)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


@app.command()
def install(ctx: typer.Context, with_: WithOption = None) -> None:
    """Find or build the server binaries without starting anything."""
    try:
        binaries = _stack(ctx).install(_services(with_))
    except StackError as error:
        raise fail(str(error)) from error
    for name, path in binaries.items():
        show(f"{name}: {path}")
    summary(f"binaries ready for {', '.join(binaries)}")


@app.command()
def up(ctx: typer.Context, with_: WithOption = None) -> None:
    """Start MinIO and Weaviate (and Argilla's services with ``--with argilla``) on
    loopback and wait until each is healthy."""
    stack = _stack(ctx)
    services = _services(with_)
    before = {name: record.pid for name in services if (record := stack.running(name))}
    started = time.monotonic()
    try:
        statuses = stack.up(services)
    except StackError as error:
        raise fail(str(error)) from error
    _print_status(statuses)
    new = [s.name for s in statuses if before.get(s.name) != s.pid]
    kept = sorted(name for name in before if name not in new)
    summary(
        f"stack up in {time.monotonic() - started:.1f}s: started {', '.join(new) or 'nothing'}"
        f"{'; already running: ' + ', '.join(kept) if kept else ''}"
        f" (state in {stack.state_dir})"
    )


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the stack's processes (by their recorded PIDs); data is kept."""
    stopped = _stack(ctx).down()
    summary(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def status(ctx: typer.Context) -> None:
    """Show each service: state, version, endpoint, PID, uptime and data size."""
    statuses = _stack(ctx).status()
    _print_status(statuses)
    running = sum(s.running for s in statuses)
    summary(f"{running} of {len(statuses)} services running", ok=running == len(statuses))


@app.command()
def logs(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help=", ".join(ALL_SERVICES))],
    lines: Annotated[int, typer.Option("--lines", "-n")] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
) -> None:
    """Print the last lines of a service's log, optionally following it."""
    if service not in ALL_SERVICES:
        raise fail(f"unknown service {service!r}; choose one of {', '.join(ALL_SERVICES)}")
    stack = _stack(ctx)
    show(stack.tail(service, lines))
    if follow:
        try:
            for line in stack.follow(service):
                show(line)
        except KeyboardInterrupt:
            pass
    summary(f"{service} log: {stack.log_file(service)}")
