"""The model registry on a real MinIO: version allocation, metadata, status lifecycle,
lineage back to the source URLs, and ``twin models``."""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.support.isolated import free_port
from twin_lib.cli import app
from twin_lib.domain.datasets import DatasetManifest, SplitFile
from twin_lib.registry.models import IllegalTransitionError, ModelStatus
from twin_lib.registry.store import ModelRegistry, RegistryError
from twin_lib.settings import TwinSettings, to_env
from twin_lib.steps.registry import model_lineage, register_trained_model, reserve_model_version
from twin_lib.storage import ObjectStore
from twin_lib.storage.errors import ServiceUnavailableError
from twin_lib.training.config import TrainingConfig

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
METRICS = {
    "run_name": "twin",
    "base_eval_loss": 4.2,
    "final_eval_loss": 3.1,
    "world_size": 2,
    "precision": {"dtype": "bf16", "device": "cpu", "requested": "auto"},
}


@pytest.fixture
def registry(stack_settings: TwinSettings, object_store: ObjectStore) -> ModelRegistry:
    return ModelRegistry(stack_settings.minio, stack_settings.registry, object_store)


@pytest.fixture
def model_name() -> str:
    return f"twin-{uuid.uuid4().hex[:8]}"


def _manifest(kind: str, snapshot_id: str, urls: list[str], raw: list[str]) -> DatasetManifest:
    return DatasetManifest(
        snapshot_id=snapshot_id,
        kind=kind,  # type: ignore[arg-type]
        author="Jane Author",
        created=datetime.now(UTC),
        generator="offline",
        counts={"train": 8, "test": 2},
        collection="TwinChunk",
        feature_version="fv-123",
        features_hash="f" * 64,
        chunk_ids=[f"chunk-{i}" for i in range(3)],
        raw_snapshot_ids=raw,
        source_urls=urls,
        content_hash="c" * 64,
        files={"train": SplitFile(key=f"{kind}/{snapshot_id}/train.parquet", sha256="0", rows=8)},
        seed=7,
        test_fraction=0.2,
    )


def _publish(object_store: ObjectStore, settings: TwinSettings, manifest: DatasetManifest) -> None:
    """The manifest the dataset step writes last (the snapshot's commit marker)."""
    object_store.put_json(
        settings.minio.datasets_bucket,
        f"{manifest.kind}/{manifest.snapshot_id}/manifest.json",
        manifest.model_dump(mode="json"),
    )


def _config(settings: TwinSettings, output_uri: str, sft: str, dpo: str | None) -> TrainingConfig:
    bucket = settings.minio.datasets_bucket

    def uris(kind: str, snapshot: str) -> dict[str, str]:
        return {s: f"s3://{bucket}/{kind}/{snapshot}/{s}.parquet" for s in ("train", "test")}

    return TrainingConfig(
        base_model="s3://twin-models/base/tiny/",
        sft_data=uris("instruction", sft),
        dpo_data=uris("preference", dpo) if dpo else None,
        output_uri=output_uri,
        run_name="twin",
    )


def _trained(
    object_store: ObjectStore, settings: TwinSettings, output_uri: str, metrics: dict[str, Any]
) -> None:
    """What the trainer leaves at its output URI, as far as the registry reads it."""
    key = output_uri.removeprefix(f"s3://{settings.minio.models_bucket}/")
    object_store.put_json(settings.minio.models_bucket, f"{key}metrics.json", metrics)


def test_minio_honours_create_only_and_compare_and_swap_writes(
    registry: ModelRegistry, model_name: str
) -> None:
    """The guarantees below rest on these: refused with 412, not silently overwritten."""
    registry.store.ensure_buckets(registry.bucket)
    key = f"{registry.prefix}/{model_name}/probe.json"
    first = registry._put_json(key, {"n": 1}, {"If-None-Match": "*"})
    assert first is not None
    assert registry._put_json(key, {"n": 2}, {"If-None-Match": "*"}) is None
    second = registry._put_json(key, {"n": 3}, {"If-Match": f'"{first}"'})
    assert second is not None
    assert registry._put_json(key, {"n": 4}, {"If-Match": f'"{first}"'}) is None
    assert registry._read_json(key) == ({"n": 3}, second)


def test_concurrent_reservations_get_distinct_consecutive_versions(
    registry: ModelRegistry, model_name: str
) -> None:
    barrier = threading.Barrier(8)

    def reserve(_: int) -> str:
        barrier.wait()
        return registry.reserve(model_name).version

    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = list(pool.map(reserve, range(8)))
    assert sorted(versions) == [f"v{i:04d}" for i in range(1, 9)]
    assert registry.versions(model_name) == sorted(versions)


def test_registered_candidate_carries_its_metadata(
    stack_settings: TwinSettings, object_store: ObjectStore, model_name: str
) -> None:
    reservation = reserve_model_version(stack_settings, model_name)
    assert reservation.version == "v0001"
    assert reservation.output_uri == (
        f"s3://{stack_settings.minio.models_bucket}/registry/{model_name}/v0001/"
    )
    _trained(object_store, stack_settings, reservation.output_uri, METRICS)
    config = _config(stack_settings, reservation.output_uri, "inst-1", "pref-1")
    launch = {"backend": "pytorchjob", "job_name": "twin-1", "duration_s": 12.5}
    model = register_trained_model(stack_settings, config, name=model_name, launch=launch)

    read = ModelRegistry(stack_settings.minio, stack_settings.registry).get(model_name, "v0001")
    assert read == model
    assert read.status is ModelStatus.CANDIDATE
    assert [(c.status, c.by) for c in read.history] == [("candidate", "training pipeline")]
    assert read.dataset_snapshots == {"instruction": "inst-1", "preference": "pref-1"}
    assert TrainingConfig.model_validate(read.hyperparameters) == config
    assert (read.precision, read.metrics["final_eval_loss"]) == ("bf16", 3.1)
    assert read.merged_uri == f"{reservation.output_uri}merged/"
    assert read.adapter_uri == f"{reservation.output_uri}adapter/"
    assert read.launch == launch
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert (read.code.version, read.code.git_commit) == ("0.1.0", head.stdout.strip())

    with pytest.raises(RegistryError, match="already registered"):
        register_trained_model(stack_settings, config, name=model_name)


def test_outputs_kept_elsewhere_get_a_fresh_version(
    stack_settings: TwinSettings, registry: ModelRegistry, model_name: str
) -> None:
    registry.reserve(model_name)
    model = registry.register_candidate(
        model_name,
        "/tmp/local-run/",
        hyperparameters={},
        base_model="base",
        dataset_snapshots={},
    )
    assert (model.version, model.output_uri, model.metrics) == ("v0002", "/tmp/local-run/", {})


def _registered(registry: ModelRegistry, name: str) -> str:
    reservation = registry.reserve(name)
    registry.register_candidate(
        name,
        reservation.output_uri,
        hyperparameters={},
        base_model="base",
        dataset_snapshots={},
        metrics={},
    )
    return reservation.version


def test_status_lifecycle_is_recorded_and_illegal_moves_refused(
    registry: ModelRegistry, model_name: str
) -> None:
    version = _registered(registry, model_name)
    with pytest.raises(IllegalTransitionError, match="cannot become deployed"):
        registry.transition(model_name, version, "deployed", by="ci", reason="skip review")
    registry.transition(model_name, version, "approved", by="alice", reason="review passed")
    registry.transition(model_name, version, "deployed", by="promote step", reason="canary ok")
    final = registry.transition(model_name, version, "retired", by="bob", reason="superseded")
    with pytest.raises(IllegalTransitionError, match=r"allowed from retired: none"):
        registry.transition(model_name, version, "approved", by="alice", reason="again")
    other = _registered(registry, model_name)
    with pytest.raises(ValueError, match="needs who and why"):
        registry.transition(model_name, other, "approved", by=" ", reason="")
    assert registry.get(model_name, other).status is ModelStatus.CANDIDATE
    stored = registry.get(model_name, version)
    assert stored == final
    assert [(c.previous, c.status, c.by, c.reason) for c in stored.history] == [
        (None, "candidate", "training pipeline", "trained"),
        ("candidate", "approved", "alice", "review passed"),
        ("approved", "deployed", "promote step", "canary ok"),
        ("deployed", "retired", "bob", "superseded"),
    ]


def test_racing_decisions_never_lose_one(registry: ModelRegistry, model_name: str) -> None:
    """Deploy and reject race from approved: whichever lands first, the other sees it and
    is refused, so the history never shows one decision overwritten by the other."""
    version = _registered(registry, model_name)
    registry.transition(model_name, version, "approved", by="alice", reason="ok")
    barrier = threading.Barrier(2)

    def decide(status: str) -> Callable[[], str]:
        def run() -> str:
            barrier.wait()
            try:
                registry.transition(model_name, version, status, by=status, reason="race")
            except IllegalTransitionError:
                return "refused"
            return status

        return run

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = [f.result() for f in [pool.submit(decide(s)) for s in ("deployed", "rejected")]]
    assert outcomes.count("refused") == 1
    stored = registry.get(model_name, version)
    assert [c.status for c in stored.history] == [
        "candidate",
        "approved",
        next(o for o in outcomes if o != "refused"),
    ]


def test_lineage_reaches_the_source_urls_and_the_cli_shows_it(
    stack_settings: TwinSettings, object_store: ObjectStore, model_name: str
) -> None:
    sft_id, dpo_id = f"inst-{model_name}", f"pref-{model_name}"
    _publish(
        object_store,
        stack_settings,
        _manifest("instruction", sft_id, ["https://a.example/1", "https://b.example/2"], ["raw-1"]),
    )
    _publish(
        object_store,
        stack_settings,
        _manifest("preference", dpo_id, ["https://a.example/1"], ["raw-1", "raw-2"]),
    )
    reservation = reserve_model_version(stack_settings, model_name)
    _trained(object_store, stack_settings, reservation.output_uri, METRICS)
    register_trained_model(
        stack_settings,
        _config(stack_settings, reservation.output_uri, sft_id, dpo_id),
        name=model_name,
    )

    lineage = model_lineage(stack_settings.minio, model_name)
    assert [(d.kind, d.dataset_snapshot_id) for d in lineage.datasets] == [
        ("instruction", sft_id),
        ("preference", dpo_id),
    ]
    assert lineage.raw_snapshot_ids == ["raw-1", "raw-2"]
    assert lineage.source_urls == ["https://a.example/1", "https://b.example/2"]
    assert lineage.datasets[0].feature_version == "fv-123"

    runner, env = CliRunner(), to_env(stack_settings)
    listed = runner.invoke(app, ["models", "list", model_name], env=env)
    assert listed.exit_code == 0, listed.output
    assert "v0001" in listed.output and "candidate" in listed.output
    assert "3.100 (base 4.200)" in listed.output
    decided = runner.invoke(
        app,
        ["models", "status", model_name, "v0001", "approved", "--by", "carol", "--reason", "good"],
        env=env,
    )
    assert decided.exit_code == 0, decided.output
    shown = runner.invoke(app, ["models", "show", model_name], env=env)
    assert shown.exit_code == 0, shown.output
    for text in ("approved", "carol", "good", sft_id, dpo_id, "raw-2", "https://b.example/2"):
        assert text in shown.output
    illegal = runner.invoke(
        app,
        ["models", "status", model_name, "v0001", "candidate", "--by", "x", "--reason", "y"],
        env=env,
    )
    assert illegal.exit_code == 1
    assert "cannot become candidate" in illegal.output
    missing = runner.invoke(app, ["models", "show", model_name, "v0099"], env=env)
    assert missing.exit_code == 1
    assert "no registered version 'v0099'" in missing.output


def test_unreachable_store_is_named_in_the_error(stack_settings: TwinSettings) -> None:
    minio = stack_settings.minio.model_copy(update={"endpoint": f"127.0.0.1:{free_port()}"})
    registry = ModelRegistry(minio, stack_settings.registry, ObjectStore(minio, attempts=1))
    with pytest.raises(ServiceUnavailableError, match=minio.endpoint):
        registry.get("twin", "v0001")
    with pytest.raises(ServiceUnavailableError, match=minio.endpoint):
        registry.transition("twin", "v0001", "approved", by="a", reason="b")


def test_a_store_without_the_models_bucket_has_no_models(stack_settings: TwinSettings) -> None:
    minio = stack_settings.minio.model_copy(update={"models_bucket": "twin-no-models-yet"})
    registry = ModelRegistry(minio, stack_settings.registry)
    assert (registry.models(), registry.versions("twin"), registry.list_versions("twin")) == (
        [],
        [],
        [],
    )
