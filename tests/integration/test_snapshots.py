import pyarrow as pa
import pytest

from twin_lib.storage import ObjectStore, SnapshotStore, StorageError
from twin_lib.storage.snapshots import MANIFEST_NAME, dataset_of

pytestmark = pytest.mark.integration

BUCKET = "twin-datasets"


def _table(rows: int, offset: int = 0) -> pa.Table:
    ids = list(range(offset, offset + rows))
    return pa.table({"content_hash": [f"h{i}" for i in ids], "text": [f"text {i}" for i in ids]})


def test_snapshot_round_trip_with_manifest(object_store: ObjectStore, unique_name: str):
    store = SnapshotStore(object_store, BUCKET, rows_per_file=4)
    manifest = store.create(unique_name, _table(10), counts={"post": 10})
    assert manifest.record_count == 10
    assert len(manifest.files) == 3
    assert [f.name for f in manifest.fields] == ["content_hash", "text"]
    assert manifest.counts == {"post": 10}
    assert dataset_of(manifest.id) == unique_name
    assert (
        store.read_table(manifest.id)
        .sort_by("content_hash")
        .equals(_table(10).sort_by("content_hash"))
    )


def test_same_content_gives_the_same_snapshot_and_no_new_objects(
    object_store: ObjectStore, unique_name: str
):
    store = SnapshotStore(object_store, BUCKET)
    first = store.create(unique_name, _table(5))
    objects_before = object_store.list(BUCKET, f"snapshots/{unique_name}/")
    reordered = _table(5).take([4, 3, 2, 1, 0])
    again = store.create(unique_name, reordered)
    assert again.id == first.id
    assert again.created == first.created
    assert object_store.list(BUCKET, f"snapshots/{unique_name}/") == objects_before


def test_lineage_and_latest(object_store: ObjectStore, unique_name: str):
    store = SnapshotStore(object_store, BUCKET)
    first = store.create(unique_name, _table(3))
    second = store.create(unique_name, _table(4), parent=first.id)
    assert second.parent == first.id
    assert [m.id for m in store.list(unique_name)] == [first.id, second.id]
    latest = store.latest(unique_name)
    assert latest is not None
    assert latest.id == second.id


def test_crash_before_manifest_leaves_nothing_visible_and_rerun_completes(
    object_store: ObjectStore, unique_name: str
):
    store = SnapshotStore(object_store, BUCKET)
    manifest = store.create(unique_name, _table(6))
    object_store.delete(BUCKET, f"snapshots/{unique_name}/{manifest.id}/{MANIFEST_NAME}")
    assert store.list(unique_name) == []
    assert store.find(manifest.id) is None
    rerun = store.create(unique_name, _table(6))
    assert rerun.id == manifest.id
    assert store.read_table(rerun.id).num_rows == 6


def test_tampered_part_is_detected(object_store: ObjectStore, unique_name: str):
    store = SnapshotStore(object_store, BUCKET)
    manifest = store.create(unique_name, _table(3))
    object_store.put_parquet(BUCKET, manifest.files[0].key, _table(3, offset=100))
    with pytest.raises(StorageError, match="does not match the hash"):
        store.read_table(manifest.id)


def test_unknown_snapshot_id_says_how_to_find_one(object_store: ObjectStore, unique_name: str):
    store = SnapshotStore(object_store, BUCKET)
    with pytest.raises(StorageError, match="twin snapshots list"):
        store.get(f"{unique_name}-0123456789abcdef")
    with pytest.raises(ValueError, match="not a snapshot id"):
        store.get("no-digest-here")
