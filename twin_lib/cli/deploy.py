"""``twin deploy VERSION`` and ``twin rollback``: the twin's InferenceService on a cluster.

The Kubernetes client, the KServe SDK and the storage clients are imported when a command
runs, so ``twin`` itself starts fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Literal

import typer

from twin_lib.cli.context import fail, settings_of, show, summary

MODEL_OPTION = typer.Option(help="Registry model (default: serving.model_name, else twin).")


@contextmanager
def _reported() -> Iterator[None]:
    """Rollout, registry and API errors as one failure line; their messages say what serves."""
    from twin_lib.k8s.inference_service import InferenceServiceError
    from twin_lib.steps.deploy import DeploymentError
    from twin_lib.storage import StorageError

    try:
        yield
    except (DeploymentError, InferenceServiceError, StorageError, ValueError) as error:
        raise fail(str(error)) from error


def deploy(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Registry version, e.g. v0003 (approved).")],
    model: Annotated[str | None, MODEL_OPTION] = None,
    canary_percent: Annotated[
        int | None,
        typer.Option(
            min=0, max=100, help="Traffic to the canary while it is checked (0: dark launch)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Print the InferenceService for this version; send nothing.")
    ] = False,
    target: Annotated[
        Literal["kserve", "local"] | None,
        typer.Option(
            help="kserve: the cluster; local: this machine's `twin serve` process "
            "(default: serving.deployment.target)."
        ),
    ] = None,
) -> None:
    """Roll an approved version out: canary, check, promote (or create the first one)."""
    settings = settings_of(ctx)
    if target is not None:
        settings = settings.model_copy(deep=True)
        settings.serving.deployment.target = target
    with _reported():
        if dry_run:
            _print_service(ctx, version, model)
            return
        from twin_lib.steps.deploy import deploy_version

        result = deploy_version(
            settings, version, by="twin deploy", name=model, canary_percent=canary_percent
        )
    show(result.markdown())
    where = result.endpoint or f"{result.namespace}/{result.isvc}"
    took = f"{result.duration_s:.0f}s"
    summary(f"{result.model} {result.version} {result.action} on {where} in {took}")


def _print_service(ctx: typer.Context, version: str, model: str | None) -> None:
    import yaml

    from twin_lib.k8s.inference_service import inference_service
    from twin_lib.registry.store import ModelRegistry
    from twin_lib.steps.deploy import check_deployable, deployment_namespace

    settings = settings_of(ctx)
    name = model or settings.serving.model_name or settings.registry.default_model
    found = ModelRegistry(settings.minio, settings.registry).get(name, version)
    check_deployable(found)
    body = inference_service(settings.serving.deployment, deployment_namespace(settings), found)
    show(yaml.safe_dump(body, sort_keys=False).rstrip())
    summary(f"{name} {version} as InferenceService (dry run: nothing sent)")


def rollback(
    ctx: typer.Context,
    model: Annotated[str | None, MODEL_OPTION] = None,
) -> None:
    """Remove a canary in progress, or serve the previously deployed version again."""
    settings = settings_of(ctx)
    with _reported():
        from twin_lib.steps.deploy import rollback as roll_back

        result = roll_back(settings, by="twin rollback", name=model)
    show(result.markdown())
    summary(f"{result.namespace}/{result.isvc}: {result.model} {result.version} {result.action}")
