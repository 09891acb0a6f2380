"""Moving training inputs and outputs between ``s3://`` URIs (MinIO) and local directories.

Every training location is a URI so the same config works in a pod (object storage) and on a
laptop (plain directories). Uploads write each file's object, so a reader listing a prefix
sees complete files; callers that need all-or-nothing write a marker object last.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from twin_lib.settings import MinioSettings
from twin_lib.storage import ObjectStore


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket; expected s3://<bucket>/<key>")
    return bucket, key


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


class Transfer:
    """Copies files and directory trees to and from URIs; MinIO is reached only when needed."""

    def __init__(self, minio: MinioSettings) -> None:
        self._minio = minio
        self._store: ObjectStore | None = None

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = ObjectStore(self._minio)
        return self._store

    def exists(self, uri: str) -> bool:
        """Whether ``uri`` names a file or a non-empty prefix/directory."""
        if not is_s3(uri):
            path = Path(uri)
            return path.is_file() or (path.is_dir() and any(path.iterdir()))
        bucket, key = split_s3(uri)
        return self.store.exists(bucket, key) or bool(self.list_keys(uri))

    def list_keys(self, uri: str) -> list[str]:
        """Relative names of the files under the prefix/directory ``uri``."""
        if not is_s3(uri):
            root = Path(uri)
            if not root.is_dir():
                return []
            return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        bucket, key = split_s3(uri)
        prefix = key.rstrip("/") + "/" if key else ""
        return sorted(info.key.removeprefix(prefix) for info in self.store.list(bucket, prefix))

    def download_file(self, uri: str, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if is_s3(uri):
            bucket, key = split_s3(uri)
            return self.store.get_file(bucket, key, path)
        source = Path(uri)
        if not source.is_file():
            raise FileNotFoundError(f"{uri} does not exist; check the training config's URIs")
        shutil.copyfile(source, path)
        return path

    def download_tree(self, uri: str, directory: Path) -> Path:
        """Copy every file under ``uri`` into ``directory`` (kept relative names)."""
        names = self.list_keys(uri)
        if not names:
            raise FileNotFoundError(f"{uri} holds no files; check the training config's URIs")
        for name in names:
            self.download_file(f"{uri.rstrip('/')}/{name}", directory / name)
        return directory

    def upload_file(self, path: Path, uri: str) -> None:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            self.store.put_file(bucket, key, path)
            return
        target = Path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.part")
        shutil.copyfile(path, partial)
        partial.replace(target)

    def upload_tree(self, directory: Path, uri: str) -> int:
        """Copy every file under ``directory`` to ``uri``; returns the number of files."""
        files = sorted(p for p in directory.rglob("*") if p.is_file())
        for path in files:
            self.upload_file(path, f"{uri.rstrip('/')}/{path.relative_to(directory)}")
        return len(files)

    def delete_tree(self, uri: str) -> None:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            self.store.delete_prefix(bucket, key.rstrip("/") + "/")
        else:
            shutil.rmtree(uri, ignore_errors=True)
