"""A feature run that dies half-way is finished by the next run: no duplicate, no loss."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.feature_runs import SimulatedCrashError
from tests.support.feature_runs import run_folder as run
from twin_lib.demo.corpus import load_chapters, write_markdown_folder
from twin_lib.settings import TwinSettings
from twin_lib.steps.crawl import RAW_DATASET
from twin_lib.storage import ObjectStore, SnapshotStore, VectorStore, chunk_collection_schema

pytestmark = pytest.mark.integration


def test_crash_after_writing_chunks_before_recording_state(
    private: TwinSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_markdown_folder(load_chapters(4), tmp_path / "essays")
    put_json = ObjectStore.put_json

    def crash_on_state(self: ObjectStore, bucket: str, key: str, value: object) -> None:
        if bucket == private.minio.features_bucket and "/documents/" in key:
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


def test_a_replaced_document_is_never_missing_and_a_crash_before_cleanup_is_finished(
    private: TwinSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New chunks are written before stale ones are deleted (it used to be the other way)."""
    folder = write_markdown_folder(load_chapters(3), tmp_path / "essays")
    first = run(private, folder, tmp_path / "w1")
    schema = chunk_collection_schema(private.weaviate.collection, 384)
    with VectorStore(private.weaviate) as store:
        old_chunks = store.count(schema, {"title": "Ge 2"})
    assert old_chunks > 1
    (folder / "Ge-002.md").write_text("# Ge 2\n\nA much shorter second chapter.\n")

    def crash(*args: object, **kwargs: object) -> None:
        raise SimulatedCrashError("killed after the new chunks were written")

    monkeypatch.setattr(VectorStore, "delete_where", crash)
    with pytest.raises(SimulatedCrashError):
        run(private, folder, tmp_path / "w2")
    monkeypatch.undo()
    with VectorStore(private.weaviate) as store:
        assert store.count(schema, {"title": "Ge 2"}) == old_chunks + 1

    resumed = run(private, folder, tmp_path / "w3")
    assert (resumed["documents_loaded"], resumed["documents_unchanged"]) == (1, 2)
    with VectorStore(private.weaviate) as store:
        chapter = [
            row["content"]
            for row in store.iter_properties(schema, ["title", "content"])
            if row["title"] == "Ge 2"
        ]
        assert len(chapter) == 1 and "much shorter second chapter" in chapter[0]
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
