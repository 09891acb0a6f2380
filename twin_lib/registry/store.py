"""The model registry in MinIO: ``<models bucket>/<prefix>/<name>/<version>/metadata.json``.

No registry server is needed (the Kubeflow Model Registry's server cannot be built here);
the object store's conditional writes give the two guarantees a registry needs:

- A version number is handed out once. ``reserve`` writes ``reserved.json`` with
  ``If-None-Match: *``, which MinIO refuses with 412 when the key exists, so two trainings
  that start at the same moment get different versions. A retried write that had in fact
  landed is recognised by the token inside the marker.
- Status changes do not overwrite each other. ``transition`` writes the new metadata with
  ``If-Match: <etag it read>``; a concurrent change makes that 412 and the change is
  re-applied to the newer metadata (and refused if it is no longer legal).

minio-py's ``put_object`` turns every extra header into user metadata (``X-Amz-Meta-``), so
these writes go through the client's ``_put_object``, which sends headers as given.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import urllib3
from minio.error import S3Error
from pydantic import BaseModel

from twin_lib.registry.models import (
    CodeVersion,
    DeploymentEvent,
    ModelStatus,
    ModelVersion,
    StatusChange,
    utc_now,
)
from twin_lib.settings import MinioSettings, RegistrySettings
from twin_lib.storage import ObjectStore
from twin_lib.storage.errors import ObjectNotFoundError, ServiceUnavailableError, StorageError

log = logging.getLogger(__name__)

METADATA = "metadata.json"
RESERVED = "reserved.json"
PACKAGE = "llm-twin"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
VERSION_PATTERN = re.compile(r"^v(\d{4,})$")
DATASET_URI = re.compile(r"^s3://[^/]+/(instruction|preference)/([^/]+)/")
PRECONDITION_FAILED = "PreconditionFailed"
MAX_ATTEMPTS = 50


class RegistryError(StorageError):
    """A registry operation could not be done; the message says why and what to do."""


class Reservation(BaseModel):
    """A version number held for a training run, and where the run writes its outputs."""

    name: str
    version: str
    output_uri: str


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise RegistryError(
            f"model name {name!r} is not valid: use 1-63 lowercase letters, digits and dashes"
        )
    return name


def version_label(number: int) -> str:
    return f"v{number:04d}"


def code_version() -> CodeVersion:
    """The installed package's version and, in a git checkout, the commit."""
    try:
        version = package_metadata.version(PACKAGE)
    except package_metadata.PackageNotFoundError:
        version = "unknown"
    commit = None
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if found.returncode == 0:
            commit = found.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return CodeVersion(package=PACKAGE, version=version, git_commit=commit)


def dataset_snapshots_of(uris: list[str]) -> dict[str, str]:
    """``s3://<bucket>/<kind>/<snapshot id>/<split>.parquet`` URIs -> {kind: snapshot id}."""
    found: dict[str, str] = {}
    for uri in uris:
        match = DATASET_URI.match(uri)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise RegistryError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class ModelRegistry:
    """Versions of named models, their metadata and status history."""

    def __init__(
        self,
        minio: MinioSettings,
        settings: RegistrySettings | None = None,
        store: ObjectStore | None = None,
    ) -> None:
        self.store = store or ObjectStore(minio)
        self.bucket = minio.models_bucket
        self.prefix = (settings or RegistrySettings()).prefix.strip("/")

    def _key(self, name: str, version: str, file: str = "") -> str:
        return f"{self.prefix}/{name}/{version}/{file}"

    def version_uri(self, name: str, version: str) -> str:
        return f"s3://{self.bucket}/{self._key(name, version)}"

    # -- conditional writes -------------------------------------------------------------

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """Connection failures of the raw calls below read like the store's own."""
        try:
            yield
        except (urllib3.exceptions.HTTPError, ConnectionError) as error:
            raise ServiceUnavailableError("MinIO", self.store.settings.url, error) from error

    def _put_json(self, key: str, value: Any, condition: dict[str, str]) -> str | None:
        """Write unless the condition fails; the new etag, or None on 412."""
        body = json.dumps(value, indent=2, sort_keys=True, default=str).encode("utf-8")
        headers = {"Content-Type": "application/json", **condition}
        try:
            with self._reachable():
                result = self.store.client._put_object(self.bucket, key, body, headers=headers)
        except S3Error as error:
            if error.code == PRECONDITION_FAILED:
                return None
            raise
        return result.etag

    def _read_json(self, key: str) -> tuple[dict[str, Any], str]:
        """The object and the etag of exactly the bytes read."""
        try:
            with self._reachable():
                response = self.store.client.get_object(self.bucket, key)
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchBucket"):
                raise ObjectNotFoundError(f"s3://{self.bucket}/{key} does not exist") from error
            raise
        try:
            data, etag = response.read(), response.headers.get("ETag", "").strip('"')
        finally:
            response.close()
            response.release_conn()
        return json.loads(data), etag

    # -- versions -----------------------------------------------------------------------

    def _folders(self, prefix: str) -> list[str]:
        """Names of the "folders" directly under ``prefix``; none before the bucket exists."""
        try:
            entries = self.store.list(self.bucket, prefix, recursive=False)
        except S3Error as error:
            if error.code == "NoSuchBucket":
                return []
            raise
        return [e.key.rstrip("/").rsplit("/", 1)[-1] for e in entries if e.key.endswith("/")]

    def models(self) -> list[str]:
        return sorted(self._folders(f"{self.prefix}/"))

    def versions(self, name: str) -> list[str]:
        """Version labels of ``name``, reserved ones included, oldest first."""
        labels = self._folders(f"{self.prefix}/{check_name(name)}/")
        return sorted((v for v in labels if VERSION_PATTERN.match(v)), key=_version_number)

    def reserve(self, name: str, *, by: str = "training pipeline") -> Reservation:
        """Hold the next free version of ``name``; the run writes to its ``output_uri``."""
        self.store.ensure_buckets(self.bucket)
        check_name(name)
        token = secrets.token_hex(16)
        existing = self.versions(name)
        number = _version_number(existing[-1]) + 1 if existing else 1
        for _ in range(MAX_ATTEMPTS):
            version = version_label(number)
            key = self._key(name, version, RESERVED)
            marker = {"name": name, "version": version, "by": by, "at": utc_now(), "token": token}
            if self._put_json(key, marker, {"If-None-Match": "*"}) is not None:
                break
            if self._read_json(key)[0].get("token") == token:
                break  # our own write landed and the retry of it was refused
            number += 1
        else:
            raise RegistryError(
                f"could not reserve a version of {name} in {MAX_ATTEMPTS} attempts: "
                "too many concurrent registrations; retry"
            )
        reservation = Reservation(
            name=name, version=version, output_uri=self.version_uri(name, version)
        )
        log.info(
            "reserved model version",
            extra={"model": reservation.name, "version": reservation.version},
        )
        return reservation

    def register_candidate(
        self,
        name: str,
        output_uri: str,
        *,
        hyperparameters: dict[str, Any],
        base_model: str,
        dataset_snapshots: dict[str, str],
        metrics: dict[str, Any] | None = None,
        launch: dict[str, Any] | None = None,
        by: str = "training pipeline",
        reason: str = "trained",
    ) -> ModelVersion:
        """Record a trained model as a candidate; its version is the one ``output_uri``
        was reserved under (a new one is reserved for outputs kept elsewhere)."""
        check_name(name)
        version = self._version_of(name, output_uri) or self.reserve(name, by=by).version
        if metrics is None:
            metrics = self._metrics_at(output_uri)
        precision = metrics.get("precision")
        model = ModelVersion(
            name=name,
            version=version,
            history=[StatusChange(status=ModelStatus.CANDIDATE, by=by, reason=reason)],
            base_model=base_model,
            dataset_snapshots=dataset_snapshots,
            hyperparameters=hyperparameters,
            code=code_version(),
            metrics=metrics,
            precision=precision.get("dtype") if isinstance(precision, dict) else precision,
            output_uri=output_uri,
            adapter_uri=f"{output_uri.rstrip('/')}/adapter/",
            merged_uri=f"{output_uri.rstrip('/')}/merged/",
            launch=launch or {},
        )
        key = self._key(name, version, METADATA)
        if self._put_json(key, model.model_dump(mode="json"), {"If-None-Match": "*"}) is None:
            raise RegistryError(
                f"{name} {version} is already registered; train again to get a new version"
            )
        log.info("registered candidate", extra={"model": name, "version": version})
        return model

    def _version_of(self, name: str, output_uri: str) -> str | None:
        """The version ``output_uri`` is the reserved location of, if it is one."""
        for version in self.versions(name):
            if output_uri.rstrip("/") == self.version_uri(name, version).rstrip("/"):
                return version
        return None

    def _metrics_at(self, output_uri: str) -> dict[str, Any]:
        if not output_uri.startswith("s3://"):
            return {}
        bucket, key = split_s3_uri(f"{output_uri.rstrip('/')}/metrics.json")
        try:
            return self.store.get_json(bucket, key)
        except ObjectNotFoundError:
            log.warning("no metrics.json beside the model", extra={"output_uri": output_uri})
            return {}

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """One version's metadata; the newest registered one when ``version`` is None."""
        if version is None:
            registered = self.list_versions(name)
            if not registered:
                raise ObjectNotFoundError(
                    f"no registered version of model {name!r} in s3://{self.bucket}/"
                    f"{self.prefix}/ (see `twin models list`)"
                )
            return registered[-1]
        try:
            data, _ = self._read_json(self._key(check_name(name), version, METADATA))
        except ObjectNotFoundError as error:
            raise ObjectNotFoundError(
                f"model {name} has no registered version {version!r} "
                f"(versions: {', '.join(self.versions(name)) or 'none'})"
            ) from error
        return ModelVersion.model_validate(data)

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Registered versions, oldest first (reservations without a model are skipped)."""
        found = []
        for version in self.versions(name):
            key = self._key(name, version, METADATA)
            if self.store.exists(self.bucket, key):
                found.append(ModelVersion.model_validate(self.store.get_json(self.bucket, key)))
        return found

    def transition(
        self, name: str, version: str, status: ModelStatus | str, *, by: str, reason: str
    ) -> ModelVersion:
        """Move a version to ``status`` and record who decided and why.

        Refuses moves the lifecycle does not allow (``IllegalTransitionError``); a change
        that raced another is re-applied to the newer metadata.
        """
        updated = self._update(
            name, version, lambda model: model.changed(ModelStatus(status), by=by, reason=reason)
        )
        log.info(
            "model status changed",
            extra={"model": name, "version": version, "status": str(status), "by": by},
        )
        return updated

    def record_deployment(self, name: str, version: str, event: DeploymentEvent) -> ModelVersion:
        """Append a rollout step to the version's deployment events (raced writes retried)."""
        updated = self._update(
            name,
            version,
            lambda model: model.model_copy(update={"deployments": [*model.deployments, event]}),
        )
        log.info(
            "deployment recorded",
            extra={"model": name, "version": version, "action": str(event.action)},
        )
        return updated

    def record_evaluation(self, name: str, version: str, summary: dict[str, Any]) -> ModelVersion:
        """Attach the summary of an evaluation (replacing an earlier one) with ``If-Match``."""
        updated = self._update(
            name, version, lambda model: model.model_copy(update={"evaluation": summary})
        )
        log.info("evaluation recorded", extra={"model": name, "version": version})
        return updated

    def _update(
        self, name: str, version: str, change: Callable[[ModelVersion], ModelVersion]
    ) -> ModelVersion:
        """Apply ``change`` to the stored metadata with ``If-Match``: a write that raced
        another is re-applied to the newer metadata, so neither change is lost."""
        key = self._key(check_name(name), version, METADATA)
        for _ in range(MAX_ATTEMPTS):
            data, etag = self._read_json(key)
            updated = change(ModelVersion.model_validate(data))
            if self._put_json(key, updated.model_dump(mode="json"), {"If-Match": f'"{etag}"'}):
                return updated
        raise RegistryError(f"{name} {version} kept changing under this update; retry")


def _version_number(label: str) -> int:
    match = VERSION_PATTERN.match(label)
    if match is None:
        raise RegistryError(f"{label!r} is not a version label like v0001")
    return int(match.group(1))


def reserve_version(minio: MinioSettings, name: str, **kwargs: Any) -> Reservation:
    return ModelRegistry(minio).reserve(name, **kwargs)


def register_candidate(
    minio: MinioSettings, name: str, output_uri: str, **metadata: Any
) -> ModelVersion:
    return ModelRegistry(minio).register_candidate(name, output_uri, **metadata)
