"""Dataset snapshots in MinIO: layout, publishing, reading back, lineage and quarantine.

Layout in ``minio.datasets_bucket``::

    <kind>/<snapshot id>/train.parquet, test.parquet, manifest.json
    quarantine/<suite>/<snapshot id>.jsonl

The manifest is written last and is the commit marker: a crash mid-publish leaves no
snapshot that readers would see. Snapshot ids derive from the content, so publishing the
same examples again finds the existing snapshot and leaves it (and its parent) untouched.
"""

from __future__ import annotations

import logging
from pathlib import Path

from twin_lib.domain.datasets import SPLITS, DatasetKind, DatasetLineage, DatasetManifest
from twin_lib.hashing import sha256_file
from twin_lib.settings import MinioSettings
from twin_lib.storage import ObjectNotFoundError, ObjectStore, StorageError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
KINDS: tuple[DatasetKind, ...] = ("instruction", "preference")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"dataset kind {kind!r} is unknown; use one of {', '.join(KINDS)}")


def snapshot_prefix(kind: str, snapshot_id: str) -> str:
    _check_kind(kind)
    return f"{kind}/{snapshot_id}"


def split_key(kind: str, snapshot_id: str, split: str) -> str:
    return f"{snapshot_prefix(kind, snapshot_id)}/{split}.parquet"


def dataset_uris(minio: MinioSettings, kind: str, snapshot_id: str) -> dict[str, str]:
    """``{"train": "s3://<bucket>/<kind>/<id>/train.parquet", "test": ...}``."""
    return {s: f"s3://{minio.datasets_bucket}/{split_key(kind, snapshot_id, s)}" for s in SPLITS}


def find_manifest(
    objects: ObjectStore, bucket: str, kind: str, snapshot_id: str
) -> DatasetManifest | None:
    try:
        raw = objects.get_json(bucket, f"{snapshot_prefix(kind, snapshot_id)}/{MANIFEST}")
    except ObjectNotFoundError:
        return None
    return DatasetManifest.model_validate(raw)


def read_manifest(minio: MinioSettings, kind: str, snapshot_id: str) -> DatasetManifest:
    manifest = find_manifest(ObjectStore(minio), minio.datasets_bucket, kind, snapshot_id)
    if manifest is None:
        raise ObjectNotFoundError(
            f"no {kind} dataset snapshot {snapshot_id!r} in s3://{minio.datasets_bucket}/"
            f"{kind}/ (its manifest.json is missing): check the id, or build the dataset first"
        )
    return manifest


def read_dataset_lineage(minio: MinioSettings, kind: str, snapshot_id: str) -> DatasetLineage:
    """From a dataset snapshot to the feature-store chunks, raw snapshots and source URLs."""
    manifest = read_manifest(minio, kind, snapshot_id)
    shared = set(DatasetLineage.model_fields) - {"dataset_snapshot_id"}
    return DatasetLineage(
        dataset_snapshot_id=manifest.snapshot_id, **manifest.model_dump(include=shared)
    )


def download_dataset(
    minio: MinioSettings, kind: str, snapshot_id: str, dest: Path
) -> dict[str, Path]:
    """Both splits as local Parquet files, each checked against its hash in the manifest.

    ``datasets.load_dataset("parquet", data_files=...)`` reads the result. (Reading the
    ``s3://`` URIs directly needs ``s3fs``, which the platform does not install.)
    """
    manifest = read_manifest(minio, kind, snapshot_id)
    objects = ObjectStore(minio)
    paths: dict[str, Path] = {}
    for split, file in manifest.files.items():
        path = objects.get_file(minio.datasets_bucket, file.key, dest / f"{split}.parquet")
        if sha256_file(path) != file.sha256:
            raise StorageError(
                f"s3://{minio.datasets_bucket}/{file.key} does not match the hash in the "
                f"manifest of {snapshot_id}: the snapshot was modified; rebuild the dataset"
            )
        paths[split] = path
    return paths


def previous_snapshot(
    objects: ObjectStore, bucket: str, kind: str, author: str, exclude: str
) -> str | None:
    """The author's latest committed snapshot of this kind: the new snapshot's parent."""
    manifests = [
        DatasetManifest.model_validate(objects.get_json(bucket, info.key))
        for info in objects.list(bucket, f"{kind}/")
        if info.key.endswith(f"/{MANIFEST}")
    ]
    mine = [m for m in manifests if m.author == author and m.snapshot_id != exclude]
    return max(mine, key=lambda m: m.created).snapshot_id if mine else None


def publish(
    objects: ObjectStore, bucket: str, manifest: DatasetManifest, files: dict[str, Path]
) -> None:
    """Upload the split files, then the manifest (the commit marker)."""
    prefix = snapshot_prefix(manifest.kind, manifest.snapshot_id)
    for split, path in files.items():
        objects.put_file(
            bucket, f"{prefix}/{split}.parquet", path, content_type="application/vnd.apache.parquet"
        )
    objects.put_json(bucket, f"{prefix}/{MANIFEST}", manifest.model_dump(mode="json"))
    logger.info(
        "dataset snapshot published",
        extra={"snapshot": manifest.snapshot_id, "uri": f"s3://{bucket}/{prefix}/"},
    )
