"""The training pipeline's steps around the trainer: a base model every pod can read, a
candidate trained into its registry version, and its registration.

Everything crosses step boundaries as URIs, never as paths on one machine: the offline base
model is published to the models bucket once (keyed by its recipe), so a PyTorchJob's pods, a
TrainJob's pods and a local torchrun all start from the same ``s3://`` prefix.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from twin_lib.registry.models import ModelVersion
from twin_lib.registry.store import ModelRegistry
from twin_lib.settings import TwinSettings
from twin_lib.steps.base_model import BaseModelSummary, resolve_base_model
from twin_lib.steps.dataset_store import dataset_uris
from twin_lib.steps.launch import launch_training
from twin_lib.steps.registry import model_lineage, register_trained_model, reserve_model_version
from twin_lib.training.base_model import RECORD_FILE
from twin_lib.training.config import TrainingConfig, join_uri
from twin_lib.training.launchers import LaunchResult
from twin_lib.training.local_launch import read_result
from twin_lib.training.outputs import TrainingResult
from twin_lib.training.transfer import Transfer

logger = logging.getLogger(__name__)

OFFLINE_NOTE = (
    "The base model is the platform's offline recipe model (a few-million-parameter Llama "
    "pre-trained for minutes on CPython's documentation), built because no base model was "
    "configured: it shows the pipeline works end to end, not what a real base model can do."
)


def prepare_base_model(settings: TwinSettings) -> BaseModelSummary:
    """The configured base model as given, or the offline one published to the models bucket.

    The published copy lives at ``s3://<models bucket>/base/<recipe key>/``; its record file
    is uploaded last and marks the copy complete, so a crash mid-upload is redone next time.
    """
    training = settings.training
    summary = resolve_base_model(
        training.base_model, training.base_recipe, settings.stack.cache_dir
    )
    if not summary.offline_build:
        return summary
    uri = f"s3://{settings.minio.models_bucket}/base/{summary.key}"
    transfer = Transfer(settings.minio)
    transfer.store.ensure_buckets(settings.minio.models_bucket)
    if not transfer.exists(join_uri(uri, RECORD_FILE)):
        local = Path(summary.base_model)
        with tempfile.TemporaryDirectory(prefix="twin-base-") as staging:
            tree = Path(staging) / "model"
            shutil.copytree(local, tree, ignore=shutil.ignore_patterns(RECORD_FILE))
            files = transfer.upload_tree(tree, uri)
        transfer.upload_file(local / RECORD_FILE, join_uri(uri, RECORD_FILE))
        logger.info("published the offline base model", extra={"uri": uri, "files": files + 1})
    return summary.model_copy(update={"base_model": uri})


class TrainedCandidate(BaseModel):
    """A finished training run, not yet registered: its config, how it ran, its numbers."""

    config: TrainingConfig
    model_name: str
    version: str
    launch: LaunchResult
    result: TrainingResult
    reused: bool = Field(
        default=False, description="an earlier, registered run of the same recipe; not retrained"
    )


RUN_SPECIFIC = {"output_uri", "checkpoint_uri", "run_name", "param_checksum_dir"}


def training_recipe(config: TrainingConfig) -> dict[str, Any]:
    """What decides a run's weights: everything in its config but where it writes."""
    return config.model_dump(mode="json", exclude=RUN_SPECIFIC)


def trained_before(
    settings: TwinSettings, name: str, config: TrainingConfig
) -> ModelVersion | None:
    """The newest registered version trained from exactly ``config``'s recipe, if any."""
    wanted = training_recipe(config)
    registry = ModelRegistry(settings.minio, settings.registry)
    for model in reversed(registry.list_versions(name)):
        try:
            recipe = training_recipe(TrainingConfig.model_validate(model.hyperparameters))
            LaunchResult.model_validate(model.launch)
        except ValidationError:
            continue  # not made by a training run of this platform
        if recipe == wanted:
            return model
    return None


def _reused(
    settings: TwinSettings, model: ModelVersion, job_spec_path: Path | None
) -> TrainedCandidate:
    launch = LaunchResult.model_validate(model.launch)
    if job_spec_path is not None:
        launch.write_job_spec(job_spec_path)
    logger.info(
        "reusing a version trained from the same recipe",
        extra={"model": model.name, "version": model.version, "status": str(model.status)},
    )
    return TrainedCandidate(
        config=TrainingConfig.model_validate(model.hyperparameters),
        model_name=model.name,
        version=model.version,
        launch=launch,
        result=read_result(settings, model.output_uri),
        reused=True,
    )


def train_candidate(
    settings: TwinSettings,
    *,
    base_model: str,
    instruction_snapshot: str,
    preference_snapshot: str | None,
    model_name: str | None = None,
    offline_base: bool = False,
    job_spec_path: Path | None = None,
) -> TrainedCandidate:
    """Reserve the next version, train into it with the configured launcher, return the run.

    DPO runs when a preference snapshot is given and ``training.dpo`` is set. A version
    already registered from the same recipe (base model, dataset snapshots, hyperparameters)
    is returned instead, unless ``training.reuse_identical`` is off: the same inputs would
    only train the same model again.
    """
    name = model_name or settings.registry.default_model
    dpo_data = (
        dataset_uris(settings.minio, "preference", preference_snapshot)
        if preference_snapshot and settings.training.dpo is not None
        else None
    )
    recipe = TrainingConfig.from_settings(
        settings.training,
        base_model=base_model,
        sft_data=dataset_uris(settings.minio, "instruction", instruction_snapshot),
        dpo_data=dpo_data,
        output_uri="",
        base_model_note=OFFLINE_NOTE if offline_base else None,
    )
    if settings.training.reuse_identical and (found := trained_before(settings, name, recipe)):
        return _reused(settings, found, job_spec_path)
    reservation = reserve_model_version(settings, name)
    config = recipe.model_copy(
        update={
            "output_uri": reservation.output_uri,
            "run_name": f"{reservation.name}-{reservation.version}",
        }
    )
    logger.info(
        "training a candidate",
        extra={
            "model": reservation.name,
            "version": reservation.version,
            "launcher": settings.training.launcher,
            "dpo": dpo_data is not None,
        },
    )
    launch = launch_training(settings, config, job_spec_path=job_spec_path)
    return TrainedCandidate(
        config=config,
        model_name=reservation.name,
        version=reservation.version,
        launch=launch,
        result=read_result(settings, config.output_uri),
    )


class RegisteredCandidate(BaseModel):
    """The registered version and the sources it can be traced back to."""

    model: ModelVersion
    source_urls: list[str]
    raw_snapshot_ids: list[str]


def register_candidate(settings: TwinSettings, run: TrainedCandidate) -> RegisteredCandidate:
    """Record the run as a ``candidate`` and resolve its lineage back to the source URLs.

    A reused run is registered already: its version is returned as it stands."""
    registered = (
        ModelRegistry(settings.minio, settings.registry).get(run.model_name, run.version)
        if run.reused
        else register_trained_model(
            settings,
            run.config,
            name=run.model_name,
            launch=run.launch.model_dump(mode="json", exclude={"job_spec"}),
        )
    )
    lineage = model_lineage(settings.minio, registered.name, registered.version, settings.registry)
    logger.info(
        "registered candidate",
        extra={
            "model": registered.name,
            "version": registered.version,
            "status": str(registered.status),
            "reused": run.reused,
            "sources": len(lineage.source_urls),
        },
    )
    return RegisteredCandidate(
        model=registered,
        source_urls=lineage.source_urls,
        raw_snapshot_ids=lineage.raw_snapshot_ids,
    )


def download_report(settings: TwinSettings, output_uri: str, name: str, path: Path) -> Path:
    """One of the run's published reports (``loss.html``, ``README.md``) at ``path``."""
    return Transfer(settings.minio).download_file(join_uri(output_uri, name), path)
