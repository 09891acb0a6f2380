"""``twin manifests``: render, validate and generate the Kubernetes packaging."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from twin_lib.cli.context import console, fail, settings_of, summary
from twin_lib.k8s.secrets import write_secret_files

app = typer.Typer(
    help="Render, validate and generate the kustomize manifests.", no_args_is_help=True
)

ManifestsDir = Annotated[Path, typer.Option(help="The repository's manifests/ directory.")]


@app.command()
def render(
    target: Annotated[
        str, typer.Argument(help="A kustomization under manifests/, e.g. overlays/dev.")
    ],
    manifests: ManifestsDir = Path("manifests"),
) -> None:
    """Print the objects `kubectl apply -k` would send, e.g. to pipe into `kubectl apply -f -`."""
    from twin_lib.k8s import validate

    typer.echo(validate.render(manifests / target), nl=False)


@app.command(name="validate")
def validate_cmd(
    ctx: typer.Context,
    manifests: ManifestsDir = Path("manifests"),
) -> None:
    """Validate every overlay and run: official schemas, Pod Security "restricted", kube-score."""
    cache_dir = settings_of(ctx).stack.cache_dir
    with tempfile.TemporaryDirectory() as scratch:
        from twin_lib.k8s import validate

        tree = validate.prepare_tree(manifests, Path(scratch) / "manifests")
        results = validate.validate_tree(tree, cache_dir)
    findings = [finding for found in results.values() for finding in found]
    for finding in findings:
        console.print(str(finding), markup=False)
    if findings:
        raise fail(f"{len(findings)} findings in {len(results)} kustomizations")
    summary(f"{len(results)} kustomizations valid, no policy findings")


@app.command(name="pipelines")
def pipelines_cmd(
    ctx: typer.Context,
    manifests: ManifestsDir = Path("manifests"),
    check: Annotated[bool, typer.Option(help="Only report files that are out of date.")] = False,
) -> None:
    """Regenerate manifests/pipelines/ from pipelines/catalog.py."""
    from twin_lib.k8s import pipelines  # kfp: imported when this command runs

    files = pipelines.render_files(pipelines.load_catalog(), settings_of(ctx).kfp.namespace)
    out_dir = manifests / "pipelines"
    if check:
        stale = pipelines.stale_files(out_dir, files)
        if stale:
            raise fail(f"out of date: {', '.join(stale)}; run `twin manifests pipelines`")
        summary(f"{len(files) - 1} pipelines up to date")
        return
    pipelines.write_files(out_dir, files)
    summary(f"wrote {len(files) - 1} pipelines to {out_dir}")


@app.command(name="init-secrets")
def init_secrets(
    manifests: ManifestsDir = Path("manifests"),
    overwrite: Annotated[bool, typer.Option(help="Replace existing env files.")] = False,
) -> None:
    """Write the ignored secret env files with random, mutually consistent credentials."""
    written = write_secret_files(manifests, overwrite=overwrite)
    summary(f"wrote {len(written)} secret env files under {manifests}")
