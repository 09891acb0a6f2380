"""Running the feature steps over a folder, and a crash to inject, for the feature tests."""

from __future__ import annotations

from pathlib import Path

from twin_lib.crawl import Source
from twin_lib.settings import FeaturesSettings, TwinSettings
from twin_lib.steps.feature_run import run_feature_steps


class SimulatedCrashError(RuntimeError):
    """Stands for the pod being killed at a chosen point."""


def run_folder(
    settings: TwinSettings, folder: Path, workdir: Path, **features: object
) -> dict[str, float]:
    """Every feature step over one folder of Ada's writing; ``features`` override settings."""
    return run_feature_steps(
        [Source(url=str(folder))],
        author="Ada",
        workdir=workdir,
        minio=settings.minio,
        weaviate=settings.weaviate,
        features=FeaturesSettings(**features),
    )
