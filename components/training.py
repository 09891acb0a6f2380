"""KFP components of the training pipeline: one ``twin_lib`` call each.

No ``from __future__ import annotations`` here: KFP reads the real annotation objects.

Endpoints and credentials come from the ``TWIN_*`` environment (the platform ConfigMap and
Secret on the cluster); the ``datasets`` and ``training`` run parameters are those settings
groups, so every knob shows in the KFP UI and a run can be repeated exactly.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from twin_lib.settings import load_settings

IMAGE = load_settings().kfp.components_image


def _component(func):  # noqa: ANN001, ANN202 - decorator factory shared by every step
    return dsl.component(base_image=IMAGE, install_kfp_package=False)(func)


@_component
def base_model(training: dict, metrics: Output[Metrics]) -> str:
    """The configured base model, or the offline recipe model built once and published."""
    from twin_lib.settings import load_settings
    from twin_lib.steps.training import prepare_base_model

    settings = load_settings(training=training)
    summary = prepare_base_model(settings)
    metrics.log_metric("offline_build", float(summary.offline_build))
    for name in ("parameters", "validation_loss", "build_seconds"):
        value = getattr(summary, name)
        if value is not None:
            metrics.log_metric(f"base_{name}", float(value))
    return summary.base_model


@_component
def instruction_dataset(
    author: str,
    datasets: dict,
    base_model: str,
    dataset: Output[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
) -> str:
    """The author's chunks -> a validated instruction snapshot; returns its id."""
    from components.artifacts import dataset_step

    return dataset_step("instruction", author, datasets, base_model, dataset, report, metrics)


@_component
def preference_dataset(
    instruction_snapshot: str,
    datasets: dict,
    base_model: str,
    dataset: Output[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
) -> str:
    """Chosen = the author's text, rejected = the base model's answer; returns the id."""
    from components.artifacts import dataset_step

    return dataset_step(
        "preference", instruction_snapshot, datasets, base_model, dataset, report, metrics
    )


@_component
def train(
    training: dict,
    base_model: str,
    instruction_snapshot: str,
    preference_snapshot: str,
    model_name: str,
    config: Output[Artifact],
    job_spec: Output[Artifact],
    loss_curve: Output[HTML],
    metrics: Output[Metrics],
) -> str:
    """LoRA SFT (then DPO) with the configured launcher into the next registry version."""
    from pathlib import Path

    from twin_lib.settings import load_settings
    from twin_lib.steps.training import download_report, train_candidate

    settings = load_settings(training=training)
    run = train_candidate(
        settings,
        base_model=base_model,
        instruction_snapshot=instruction_snapshot,
        preference_snapshot=preference_snapshot or None,
        model_name=model_name or None,
        offline_base=base_model.startswith(f"s3://{settings.minio.models_bucket}/base/"),
        job_spec_path=Path(job_spec.path),
    )
    Path(config.path).write_text(run.model_dump_json(indent=2), encoding="utf-8")
    config.metadata.update({"model": run.model_name, "version": run.version})
    download_report(settings, run.config.output_uri, "loss.html", Path(loss_curve.path))
    for name in ("base_eval_loss", "final_eval_loss", "duration_s", "world_size", "sft_steps"):
        value = getattr(run.result, name)
        if value is not None:
            metrics.log_metric(name, float(value))
    metrics.log_metric("bf16", float(run.result.precision == "bf16"))
    return run.version


@_component
def register(run: Input[Artifact], model: Output[Model], metrics: Output[Metrics]) -> str:
    """Register the trained run as a candidate, with lineage back to the source URLs."""
    from pathlib import Path

    from twin_lib.settings import load_settings
    from twin_lib.steps.training import TrainedCandidate, register_candidate

    trained = TrainedCandidate.model_validate_json(Path(run.path).read_text(encoding="utf-8"))
    registered = register_candidate(load_settings(), trained)
    version = registered.model
    model.metadata.update(
        {
            "merged_uri": version.merged_uri,
            "name": version.name,
            "version": version.version,
            "status": str(version.status),
            "base_model": version.base_model,
            "precision": version.precision or "",
            "source_urls": len(registered.source_urls),
        }
    )
    metrics.log_metric("source_urls", float(len(registered.source_urls)))
    metrics.log_metric("raw_snapshots", float(len(registered.raw_snapshot_ids)))
    return version.version
