"""Start a KFP run of a registered pipeline: what the run Jobs and CronJobs execute.

KFP v2 runs are not Kubernetes objects, so a declarative "start a run" is a Job whose
container calls this through ``twin pipeline submit``. It runs the newest registered
``PipelineVersion`` of the pipeline, the one ``kubectl apply`` put there last.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from twin_lib.settings import TwinSettings

logger = logging.getLogger(__name__)

ClientFactory = Callable[..., Any]


class SubmitError(RuntimeError):
    """The run could not be started; the message says what to fix."""


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``k=v`` pairs to pipeline arguments; values that parse as JSON keep their type."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SubmitError(f"--param {pair!r} is not of the form name=value")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def pipeline_arguments(
    pipeline: Any, given: Mapping[str, Any], fallbacks: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The arguments a pipeline is called with: ``given``, then ``fallbacks`` (values from
    settings) for parameters it declares, then its own defaults.

    Checked against the pipeline function's signature so a typo fails here, naming the
    parameter, instead of as an opaque compile or run error.
    """
    signature = inspect.signature(getattr(pipeline, "pipeline_func", pipeline))
    known = signature.parameters
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise SubmitError(
            f"unknown parameter(s) {', '.join(unknown)}; this pipeline takes: {', '.join(known)}"
        )
    arguments = {name: value for name, value in (fallbacks or {}).items() if name in known} | dict(
        given
    )
    missing = [
        name
        for name, parameter in known.items()
        if name not in arguments and parameter.default is inspect.Parameter.empty
    ]
    if missing:
        raise SubmitError(
            f"missing parameter(s) {', '.join(missing)}: pass --param {missing[0]}=VALUE "
            "or put them in --params-file"
        )
    return arguments


def submit_run(
    settings: TwinSettings,
    pipeline: str,
    params: dict[str, Any],
    experiment: str = "llm-twin",
    client_factory: ClientFactory | None = None,
) -> str:
    """Start a run of the latest version of ``pipeline`` (a catalog key); return its run id.

    ``client_factory`` defaults to ``kfp.Client``, imported here: the CLI imports this module
    on every start and the KFP SDK is slow to import.
    """
    import kfp

    from twin_lib.k8s.pipelines import object_name

    if not settings.kfp.host:
        raise SubmitError(
            "no KFP endpoint: set TWIN_KFP__HOST (the run Jobs get it from twin-endpoints)"
        )
    client = (client_factory or kfp.Client)(host=settings.kfp.host)
    name = object_name(pipeline)
    pipeline_id = client.get_pipeline_id(name)
    if pipeline_id is None:
        raise SubmitError(
            f"pipeline {name!r} is not registered at {settings.kfp.host}: "
            "apply the pipeline objects first (kubectl apply -k manifests/overlays/dev)"
        )
    versions = client.list_pipeline_versions(pipeline_id, sort_by="created_at desc", page_size=1)
    if not versions.pipeline_versions:
        raise SubmitError(f"pipeline {name!r} has no version yet: apply its PipelineVersion")
    version = versions.pipeline_versions[0]
    run_name = f"{name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    experiment_id = client.create_experiment(experiment).experiment_id
    run = client.run_pipeline(
        experiment_id=experiment_id,
        job_name=run_name,
        params=params,
        pipeline_id=pipeline_id,
        version_id=version.pipeline_version_id,
    )
    logger.info(
        "submitted run",
        extra={"run_id": run.run_id, "pipeline": name, "version": version.display_name},
    )
    return str(run.run_id)
