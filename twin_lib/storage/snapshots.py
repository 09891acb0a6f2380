"""Immutable, content-addressed dataset snapshots on the object store.

A snapshot is a set of Parquet parts plus a manifest written last; the manifest is the commit
marker, so a crash mid-write leaves no half snapshot visible to readers, and a re-run with the
same content rewrites the same keys and returns the same id. Later stages reference data only
by snapshot id, which makes every training run traceable to the exact records it saw.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pyarrow as pa
from pydantic import BaseModel, Field

from twin_lib.hashing import combined_hash, sha256_bytes, sha256_json
from twin_lib.storage.errors import ObjectNotFoundError, StorageError
from twin_lib.storage.object_store import ObjectStore, parquet_to_table

log = logging.getLogger(__name__)

SNAPSHOT_ROOT = "snapshots"
MANIFEST_NAME = "manifest.json"


class SnapshotFile(BaseModel):
    key: str
    sha256: str
    size: int
    rows: int


class SchemaField(BaseModel):
    name: str
    type: str


class SnapshotManifest(BaseModel):
    id: str
    dataset: str
    created: datetime
    parent: str | None = None
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="what the snapshot is of (e.g. its author), for finding its predecessor",
    )
    record_count: int
    counts: dict[str, int] = Field(default_factory=dict)
    fields: list[SchemaField]
    content_hash: str
    files: list[SnapshotFile]


def snapshot_id(dataset: str, content_hash: str) -> str:
    return f"{dataset}-{content_hash[:16]}"


def dataset_of(snapshot: str) -> str:
    dataset, sep, digest = snapshot.rpartition("-")
    if not sep or not dataset or len(digest) != 16:
        raise ValueError(
            f"{snapshot!r} is not a snapshot id; ids look like '<dataset>-<16 hex digits>' "
            "(list them with `twin snapshots list <dataset>`)"
        )
    return dataset


def table_content_hash(table: pa.Table, hash_column: str) -> str:
    """Identity of a table's content, independent of row order and file encoding."""
    if hash_column in table.column_names:
        return combined_hash(str(h) for h in table.column(hash_column).to_pylist())
    return combined_hash(sha256_json(row) for row in table.to_pylist())


class SnapshotStore:
    """Writes and reads snapshots of one bucket."""

    def __init__(self, objects: ObjectStore, bucket: str, *, rows_per_file: int = 50_000) -> None:
        self.objects = objects
        self.bucket = bucket
        self.rows_per_file = rows_per_file

    def _prefix(self, dataset: str, snapshot: str) -> str:
        return f"{SNAPSHOT_ROOT}/{dataset}/{snapshot}"

    def create(
        self,
        dataset: str,
        table: pa.Table,
        *,
        hash_column: str = "content_hash",
        identity: str | None = None,
        counts: dict[str, int] | None = None,
        parent: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> SnapshotManifest:
        """Write ``table`` as a snapshot, or return the existing one with the same content.

        ``identity`` replaces the hash of ``hash_column`` when more than the content makes a
        snapshot what it is (raw documents: also their author and source URLs).
        """
        content_hash = identity or table_content_hash(table, hash_column)
        sid = snapshot_id(dataset, content_hash)
        existing = self.find(sid)
        if existing is not None:
            log.info("snapshot already exists", extra={"snapshot": sid, "rows": table.num_rows})
            return existing
        prefix = self._prefix(dataset, sid)
        files = []
        for index, offset in enumerate(range(0, max(table.num_rows, 1), self.rows_per_file)):
            part = table.slice(offset, self.rows_per_file)
            key = f"{prefix}/part-{index:05d}.parquet"
            stored = self.objects.put_parquet(self.bucket, key, part)
            size = self.objects.stat(self.bucket, key)
            files.append(
                SnapshotFile(
                    key=key, sha256=stored, size=size.size if size else 0, rows=part.num_rows
                )
            )
        manifest = SnapshotManifest(
            id=sid,
            dataset=dataset,
            created=datetime.now(UTC),
            parent=parent,
            labels=labels or {},
            record_count=table.num_rows,
            counts=counts or {},
            fields=[SchemaField(name=f.name, type=str(f.type)) for f in table.schema],
            content_hash=content_hash,
            files=files,
        )
        self.objects.put_json(
            self.bucket, f"{prefix}/{MANIFEST_NAME}", manifest.model_dump(mode="json")
        )
        log.info(
            "snapshot written",
            extra={"snapshot": sid, "rows": table.num_rows, "files": len(files)},
        )
        return manifest

    def find(self, snapshot: str) -> SnapshotManifest | None:
        key = f"{self._prefix(dataset_of(snapshot), snapshot)}/{MANIFEST_NAME}"
        try:
            return SnapshotManifest.model_validate(self.objects.get_json(self.bucket, key))
        except ObjectNotFoundError:
            return None

    def get(self, snapshot: str) -> SnapshotManifest:
        manifest = self.find(snapshot)
        if manifest is None:
            raise ObjectNotFoundError(
                f"snapshot {snapshot!r} does not exist in bucket {self.bucket!r}; "
                f"list existing ones with `twin snapshots list {dataset_of(snapshot)}`"
            )
        return manifest

    def read_table(self, snapshot: str) -> pa.Table:
        """All rows of a snapshot, with every part checked against its recorded hash."""
        manifest = self.get(snapshot)
        parts = []
        for file in manifest.files:
            data = self.objects.get_bytes(self.bucket, file.key)
            if sha256_bytes(data) != file.sha256:
                raise StorageError(
                    f"s3://{self.bucket}/{file.key} does not match the hash in snapshot "
                    f"{snapshot}'s manifest: the snapshot was modified or corrupted; "
                    "re-create it from its source"
                )
            parts.append(parquet_to_table(data))
        return pa.concat_tables(parts) if parts else pa.table({})

    def list(self, dataset: str) -> list[SnapshotManifest]:
        """Committed snapshots of ``dataset``, oldest first."""
        manifests = [
            SnapshotManifest.model_validate(self.objects.get_json(self.bucket, info.key))
            for info in self.objects.list(self.bucket, f"{SNAPSHOT_ROOT}/{dataset}/")
            if info.key.endswith(f"/{MANIFEST_NAME}")
        ]
        return sorted(manifests, key=lambda m: m.created)

    def latest(self, dataset: str, labels: dict[str, str] | None = None) -> SnapshotManifest | None:
        """The newest snapshot of ``dataset`` whose labels include all of ``labels``."""
        wanted = (labels or {}).items()
        manifests = [m for m in self.list(dataset) if wanted <= m.labels.items()]
        return manifests[-1] if manifests else None
