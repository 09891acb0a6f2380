"""A feature run that dies half-way is finished by the next run: no duplicate, no loss."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.fixtures.corpus.kjv import load_chapters, write_markdown_folder
from twin_lib.crawl import Source
from twin_lib.settings import FeaturesSettings, TwinSettings
from twin_lib.steps.crawl import RAW_DATASET
from twin_lib.steps.feature_run import run_feature_steps
from twin_lib.storage import ObjectStore, SnapshotStore, VectorStore, chunk_collection_schema

pytestmark = pytest.mark.integration


class SimulatedCrashError(RuntimeError):
    """Stands for the pod being killed at a chosen point."""


@pytest.fixture
def private(stack_settings: TwinSettings) -> TwinSettings:
    """Buckets and a collection of its own, so the exact counts of other tests hold."""
    tag = uuid.uuid4().hex[:8]
    minio = stack_settings.minio.model_copy(
        update={"raw_bucket": f"raw-{tag}", "features_bucket": f"features-{tag}"}
    )
    weaviate = stack_settings.weaviate.model_copy(update={"collection": f"T{tag}"})
    return stack_settings.model_copy(update={"minio": minio, "weaviate": weaviate})


def run(settings: TwinSettings, folder: Path, workdir: Path) -> dict[str, float]:
    return run_feature_steps(
        [Source(url=str(folder))],
        author="Ada",
        workdir=workdir,
        minio=settings.minio,
        weaviate=settings.weaviate,
        features=FeaturesSettings(),
    )


def test_crash_after_writing_chunks_before_recording_state(
    private: TwinSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_markdown_folder(load_chapters(4), tmp_path / "essays")
    put_json = ObjectStore.put_json

    def crash_on_state(self: ObjectStore, bucket: str, key: str, value: object) -> None:
        if bucket == private.minio.features_bucket:
            raise SimulatedCrashError("killed before the sync state was recorded")
        put_json(self, bucket, key, value)

    monkeypatch.setattr(ObjectStore, "put_json", crash_on_state)
    with pytest.raises(SimulatedCrashError):
        run(private, folder, tmp_path / "w1")
    monkeypatch.undo()

    schema = chunk_collection_schema(private.weaviate.collection, 384)
    with VectorStore(private.weaviate) as store:
        after_crash = store.count(schema)
    assert after_crash > 0

    resumed = run(private, folder, tmp_path / "w2")
    assert resumed["documents_loaded"] == 4
    with VectorStore(private.weaviate) as store:
        assert store.count(schema) == after_crash
    snapshots = SnapshotStore(ObjectStore(private.minio), private.minio.raw_bucket)
    assert len(snapshots.list(RAW_DATASET)) == 1

    settled = run(private, folder, tmp_path / "w3")
    assert (settled["documents_loaded"], settled["chunks_written"]) == (0, 0)
    assert settled["documents_unchanged"] == 4


def test_crash_between_deleting_old_chunks_and_writing_new_ones(
    private: TwinSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_markdown_folder(load_chapters(3), tmp_path / "essays")
    first = run(private, folder, tmp_path / "w1")
    schema = chunk_collection_schema(private.weaviate.collection, 384)
    with VectorStore(private.weaviate) as store:
        old_chunks = store.count(schema, {"title": "Ge 2"})
    assert old_chunks > 1
    (folder / "Ge-002.md").write_text("# Ge 2\n\nA much shorter second chapter.\n")

    def crash(*args: object, **kwargs: object) -> None:
        raise SimulatedCrashError("killed after the old chunks were deleted")

    monkeypatch.setattr(VectorStore, "upsert", crash)
    with pytest.raises(SimulatedCrashError):
        run(private, folder, tmp_path / "w2")
    monkeypatch.undo()
    with VectorStore(private.weaviate) as store:
        assert store.count(schema, {"title": "Ge 2"}) == 0

    resumed = run(private, folder, tmp_path / "w3")
    assert (resumed["documents_loaded"], resumed["documents_unchanged"]) == (1, 2)
    with VectorStore(private.weaviate) as store:
        assert store.count(schema, {"title": "Ge 2"}) == 1
        assert store.count(schema) == first["collection_size"] - old_chunks + 1


def test_crash_half_way_through_writing_chunks(
    private: TwinSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_markdown_folder(load_chapters(3), tmp_path / "essays")
    upsert = VectorStore.upsert

    def write_half_then_die(self: VectorStore, schema: object, records: list) -> None:
        upsert(self, schema, records[: len(records) // 2])
        raise SimulatedCrashError("killed in the middle of the batch")

    monkeypatch.setattr(VectorStore, "upsert", write_half_then_die)
    with pytest.raises(SimulatedCrashError):
        run(private, folder, tmp_path / "w1")
    monkeypatch.undo()

    resumed = run(private, folder, tmp_path / "w2")
    assert resumed["documents_loaded"] == 3
    assert resumed["collection_size"] == resumed["chunks_written"]
