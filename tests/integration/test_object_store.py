import os
from pathlib import Path

import pyarrow as pa
import pytest

from twin_lib.hashing import sha256_bytes, sha256_file
from twin_lib.storage import ObjectNotFoundError, ObjectStore

pytestmark = pytest.mark.integration

BUCKET = "twin-raw"


def test_bytes_json_and_parquet_round_trip(object_store: ObjectStore, unique_name: str):
    digest = object_store.put_bytes(BUCKET, f"{unique_name}/blob.bin", b"\x00\x01binary")
    assert digest == sha256_bytes(b"\x00\x01binary")
    assert object_store.get_bytes(BUCKET, f"{unique_name}/blob.bin") == b"\x00\x01binary"

    object_store.put_json(BUCKET, f"{unique_name}/doc.json", {"title": "Ünïcode", "n": [1, 2]})
    assert object_store.get_json(BUCKET, f"{unique_name}/doc.json") == {
        "title": "Ünïcode",
        "n": [1, 2],
    }

    table = pa.table({"id": [1, 2, 3], "text": ["a", "b", None]})
    object_store.put_parquet(BUCKET, f"{unique_name}/t.parquet", table)
    assert object_store.get_parquet(BUCKET, f"{unique_name}/t.parquet").equals(table)


def test_list_exists_and_delete_by_prefix(object_store: ObjectStore, unique_name: str):
    for key in ("a/1", "a/2", "b/1"):
        object_store.put_bytes(BUCKET, f"{unique_name}/{key}", key.encode())
    listed = [info.key for info in object_store.list(BUCKET, f"{unique_name}/a/")]
    assert listed == [f"{unique_name}/a/1", f"{unique_name}/a/2"]
    assert object_store.exists(BUCKET, f"{unique_name}/b/1")
    assert object_store.delete_prefix(BUCKET, f"{unique_name}/a/") == 2
    assert not object_store.exists(BUCKET, f"{unique_name}/a/1")
    assert object_store.exists(BUCKET, f"{unique_name}/b/1")


def test_missing_object_error_names_the_object(object_store: ObjectStore, unique_name: str):
    with pytest.raises(ObjectNotFoundError, match=f"s3://{BUCKET}/{unique_name}/nope"):
        object_store.get_bytes(BUCKET, f"{unique_name}/nope")


def test_content_addressed_puts_are_deduplicated(object_store: ObjectStore, unique_name: str):
    first = object_store.put_content_addressed(BUCKET, unique_name, b"same", suffix=".txt")
    second = object_store.put_content_addressed(BUCKET, unique_name, b"same", suffix=".txt")
    other = object_store.put_content_addressed(BUCKET, unique_name, b"different", suffix=".txt")
    assert first == second != other
    assert first.endswith(f"{sha256_bytes(b'same')}.txt")
    assert len(object_store.list(BUCKET, unique_name)) == 2


def test_large_files_stream_through_multipart(
    object_store: ObjectStore, unique_name: str, tmp_path: Path
):
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(12 * 1024 * 1024))
    object_store.put_file(BUCKET, f"{unique_name}/big.bin", source)
    info = object_store.stat(BUCKET, f"{unique_name}/big.bin")
    assert info is not None
    assert info.size == source.stat().st_size
    assert "-" in (info.etag or ""), "a multipart upload's ETag carries the part count"

    with source.open("rb") as stream:
        object_store.put_stream(BUCKET, f"{unique_name}/streamed.bin", stream)
    restored = object_store.get_file(BUCKET, f"{unique_name}/streamed.bin", tmp_path / "out.bin")
    assert sha256_file(restored) == sha256_file(source)
