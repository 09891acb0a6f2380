"""MinIO (or any S3) adapter for the raw lake, datasets and model registry.

Large objects stream through multipart uploads and chunked downloads, so memory stays flat
whatever the object size. Every call goes through one retry policy, and an unreachable
server yields one ``ServiceUnavailableError`` naming the endpoint.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq
import urllib3
from minio import Minio
from minio.error import S3Error, ServerError
from pydantic import BaseModel

from twin_lib.hashing import sha256_bytes
from twin_lib.settings import MinioSettings
from twin_lib.storage.errors import ObjectNotFoundError, ServiceUnavailableError, StorageError
from twin_lib.storage.retry import RetryPolicy, root_cause

log = logging.getLogger(__name__)


_TRANSIENT_S3_CODES = frozenset(
    {
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "XMinioServerNotInitialized",
        "OperationTimedOut",
    }
)
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchObject"})
_CONNECTION_ERRORS = (
    urllib3.exceptions.MaxRetryError,
    urllib3.exceptions.NewConnectionError,
    urllib3.exceptions.ProtocolError,
    ConnectionError,
)
# Refused, reset or silent: after the retries, all mean the server is not there for us.
_UNREACHABLE_ERRORS = (*_CONNECTION_ERRORS, urllib3.exceptions.TimeoutError)
_STREAM_CHUNK = 1024 * 1024


class ObjectInfo(BaseModel):
    key: str
    size: int
    etag: str | None = None
    last_modified: datetime | None = None


def table_to_parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def parquet_to_table(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def _is_unreachable(error: BaseException) -> bool:
    return isinstance(error, _UNREACHABLE_ERRORS)


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, ServerError):
        return True
    if isinstance(error, S3Error):
        return error.code in _TRANSIENT_S3_CODES
    return isinstance(error, _UNREACHABLE_ERRORS)


class ObjectStore:
    """Buckets, objects, JSON, Parquet and content-addressed blobs on MinIO."""

    def __init__(self, settings: MinioSettings, *, attempts: int = 4) -> None:
        self.settings = settings
        self._call = RetryPolicy(
            service="MinIO",
            endpoint=settings.url,
            is_transient=_is_transient,
            is_unreachable=_is_unreachable,
            attempts=attempts,
        ).call
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=3.0, read=120.0),
            retries=urllib3.Retry(total=0, redirect=0),
            maxsize=8,
        )
        self.client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key.get_secret_value(),
            secure=settings.secure,
            region=settings.region,
            http_client=http,
        )

    @property
    def _part_size(self) -> int:
        return self.settings.part_size_mb * 1024 * 1024

    def ensure_buckets(self, *buckets: str) -> None:
        """Create the platform's buckets if missing; safe to call on every start."""
        for bucket in buckets or self.settings.buckets:
            if not self._call(lambda b=bucket: self.client.bucket_exists(b)):
                try:
                    self._call(lambda b=bucket: self.client.make_bucket(b))
                    log.info("created bucket", extra={"bucket": bucket})
                except S3Error as error:
                    if error.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise

    def put_bytes(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Store ``data`` at ``key``; returns the sha256 of what was stored."""
        self._call(
            lambda: self.client.put_object(
                bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type=content_type,
                metadata=metadata,
            )
        )
        return sha256_bytes(data)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        with self.open(bucket, key) as stream:
            return stream.read()

    def put_json(self, bucket: str, key: str, value: Any) -> str:
        body = json.dumps(value, indent=2, sort_keys=True, default=str).encode("utf-8")
        return self.put_bytes(bucket, key, body, content_type="application/json")

    def get_json(self, bucket: str, key: str) -> Any:
        return json.loads(self.get_bytes(bucket, key))

    def put_parquet(self, bucket: str, key: str, table: pa.Table) -> str:
        return self.put_bytes(
            bucket, key, table_to_parquet(table), content_type="application/vnd.apache.parquet"
        )

    def get_parquet(self, bucket: str, key: str) -> pa.Table:
        return parquet_to_table(self.get_bytes(bucket, key))

    def put_stream(
        self,
        bucket: str,
        key: str,
        stream: BinaryIO,
        *,
        length: int = -1,
        content_type: str = "application/octet-stream",
    ) -> None:
        """Multipart upload from a stream of unknown or known length.

        Not retried: a half-read stream cannot be replayed. Callers with a file use
        ``put_file``, which can start over.
        """
        try:
            self.client.put_object(
                bucket, key, stream, length, content_type=content_type, part_size=self._part_size
            )
        except _UNREACHABLE_ERRORS as error:
            raise self._gone(error) from error

    def _gone(self, error: BaseException) -> ServiceUnavailableError:
        return ServiceUnavailableError("MinIO", self.settings.url, root_cause(error))

    def put_file(
        self, bucket: str, key: str, path: Path, *, content_type: str = "application/octet-stream"
    ) -> None:
        self._call(
            lambda: self.client.fput_object(
                bucket, key, str(path), content_type=content_type, part_size=self._part_size
            )
        )

    def get_file(self, bucket: str, key: str, path: Path) -> Path:
        """Stream an object to ``path`` without holding it in memory."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        with self.open(bucket, key) as stream, tmp.open("wb") as out:
            while block := stream.read(_STREAM_CHUNK):
                out.write(block)
        tmp.replace(path)
        return path

    @contextmanager
    def open(self, bucket: str, key: str) -> Iterator[BinaryIO]:
        """A readable stream over an object; the connection is released on exit.

        A server that goes away while the caller reads gives the same one-line error as one
        that was never there, not the HTTP client's broken-connection exception.
        """
        try:
            response = self._call(lambda: self.client.get_object(bucket, key))
        except S3Error as error:
            if error.code in _MISSING_CODES:
                raise ObjectNotFoundError(f"s3://{bucket}/{key} does not exist") from error
            raise StorageError(f"cannot read s3://{bucket}/{key}: {error.code}") from error
        try:
            yield response  # type: ignore[misc]
        except _UNREACHABLE_ERRORS as error:
            raise self._gone(error) from error
        finally:
            response.close()
            response.release_conn()

    def stat(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            found = self._call(lambda: self.client.stat_object(bucket, key))
        except S3Error as error:
            if error.code in _MISSING_CODES:
                return None
            raise
        return ObjectInfo(
            key=key, size=found.size or 0, etag=found.etag, last_modified=found.last_modified
        )

    def exists(self, bucket: str, key: str) -> bool:
        return self.stat(bucket, key) is not None

    def list(self, bucket: str, prefix: str = "", *, recursive: bool = True) -> list[ObjectInfo]:
        return self._call(
            lambda: [
                ObjectInfo(
                    key=item.object_name or "",
                    size=item.size or 0,
                    etag=item.etag,
                    last_modified=item.last_modified,
                )
                for item in self.client.list_objects(bucket, prefix=prefix, recursive=recursive)
            ]
        )

    def delete(self, bucket: str, key: str) -> None:
        self._call(lambda: self.client.remove_object(bucket, key))

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        keys = [info.key for info in self.list(bucket, prefix)]
        for key in keys:
            self.delete(bucket, key)
        return len(keys)

    def put_content_addressed(
        self,
        bucket: str,
        prefix: str,
        data: bytes,
        *,
        suffix: str = "",
        content_type: str = "application/octet-stream",
    ) -> str:
        """Store ``data`` under its sha256 and return the key; an existing copy is reused."""
        digest = sha256_bytes(data)
        key = f"{prefix.rstrip('/')}/{digest[:2]}/{digest}{suffix}"
        if not self.exists(bucket, key):
            self.put_bytes(bucket, key, data, content_type=content_type)
        return key
