"""Which registry version the twin serves, where its weights are, and whose twin it is.

A served model is refused unless its answers can be grounded the way it was trained: the
version must have passed the gate (approved or deployed), and the feature-store collection
its datasets were built from must still hold chunks of the same feature version, cleaned and
embedded with the recipe this process would use for queries. Otherwise the twin would
compare questions with vectors of another model, or retrieve text cut another way, and
answer from the wrong passages without anyone noticing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from twin_lib.domain.datasets import DatasetManifest
from twin_lib.features.version import embedding_identity, feature_version
from twin_lib.registry.models import ModelStatus, ModelVersion
from twin_lib.registry.store import ModelRegistry
from twin_lib.serving.contracts import ServedModel
from twin_lib.settings import TwinSettings
from twin_lib.steps.dataset_store import read_manifest
from twin_lib.steps.feature_state import collection_feature_version
from twin_lib.steps.model_files import local_model_dir
from twin_lib.storage import ObjectNotFoundError

logger = logging.getLogger(__name__)

SERVABLE = frozenset({ModelStatus.APPROVED, ModelStatus.DEPLOYED})
TRIAL_SERVABLE = SERVABLE | {ModelStatus.CANDIDATE}
WEIGHTS_MARKER = "config.json"


class ModelNotServableError(ValueError):
    """The requested model version may not, or cannot, be served; the message says why."""


class FeatureVersionMismatchError(ValueError):
    """The feature store no longer holds chunks made the way the model's data was made."""


def _servable(allow_unapproved: bool) -> frozenset[ModelStatus]:
    return TRIAL_SERVABLE if allow_unapproved else SERVABLE


def _approve_hint(model: ModelVersion) -> str:
    return (
        f"approve it with `twin models status {model.name} {model.version} approved "
        "--reason ... --by ...`, or, for a local trial only, serve it anyway with "
        "`--allow-unapproved` (TWIN_SERVING__ALLOW_UNAPPROVED=true)"
    )


def _pick_version(
    registry: ModelRegistry, name: str, version: str | None, trial: bool
) -> ModelVersion:
    """The named version, or the newest one whose status may be served."""
    if version is not None:
        try:
            return registry.get(name, version)
        except ObjectNotFoundError as error:
            raise ModelNotServableError(
                f"{error}; set TWIN_SERVING__VERSION (or --version) to one of them"
            ) from error
    versions = registry.list_versions(name)
    servable = [v for v in versions if v.status in _servable(trial)]
    if servable:
        return servable[-1]
    known = ", ".join(f"{v.version} ({v.status})" for v in versions) or "none registered"
    wanted = " or ".join(sorted(_servable(trial)))
    raise ModelNotServableError(
        f"model {name!r} has no {wanted} version to serve (versions: {known}); approve one "
        f"with `twin models status {name} <version> approved --reason ... --by ...`, or name "
        "a candidate with TWIN_SERVING__VERSION and allow it with "
        "TWIN_SERVING__ALLOW_UNAPPROVED=true (local trials only)"
    )


def _check_status(model: ModelVersion, allow_unapproved: bool) -> None:
    if model.status in _servable(allow_unapproved):
        if model.status is ModelStatus.CANDIDATE:
            logger.warning(
                "serving a candidate no gate approved (allow_unapproved is set)",
                extra={"model": model.name, "version": model.version},
            )
        return
    if model.status is ModelStatus.CANDIDATE:
        raise ModelNotServableError(
            f"{model.name} {model.version} is a candidate: no gate approved it; "
            + _approve_hint(model)
        )
    raise ModelNotServableError(
        f"{model.name} {model.version} is {model.status}, which is final; it is never "
        f"served (last decision: {model.history[-1].reason!r} by {model.history[-1].by}); "
        "serve an approved version instead (`twin models list`)"
    )


def _check_single(values: set[str], what: str, model: ModelVersion) -> None:
    if len(values) != 1:
        raise ModelNotServableError(
            f"the datasets of {model.name} {model.version} disagree on the {what} "
            f"({', '.join(sorted(values)) or 'none'}): the twin can retrieve from one author's "
            "chunks of one feature version only; train it on datasets built from one collection"
        )


def _training_origin(settings: TwinSettings, model: ModelVersion) -> DatasetManifest:
    """The manifest of the model's instruction data: whose text, from which collection."""
    if not model.dataset_snapshots:
        raise ModelNotServableError(
            f"{model.name} {model.version} records no dataset snapshots, so its author and "
            "feature-store collection are unknown; serve a model trained by the training "
            "pipeline (it records its datasets)"
        )
    try:
        manifests = [
            read_manifest(settings.minio, kind, snapshot)
            for kind, snapshot in sorted(model.dataset_snapshots.items())
        ]
    except ObjectNotFoundError as error:
        raise ModelNotServableError(
            f"{model.name} {model.version} was trained on a dataset that is gone: {error}"
        ) from error
    for what, values in (
        ("author", {m.author for m in manifests}),
        ("collection", {m.collection for m in manifests}),
        ("feature version", {v for m in manifests for v in m.feature_version.split("+")}),
    ):
        _check_single(values, what, model)
    return manifests[0]


def _check_features(settings: TwinSettings, model: ModelVersion, origin: DatasetManifest) -> None:
    """The collection, the model's data and this process's query recipe agree."""
    collection, trained = origin.collection, origin.feature_version
    stored = collection_feature_version(
        settings.weaviate, settings.minio, collection, prefix=settings.features.state_prefix
    )
    rerun = (
        "re-run the feature pipeline with the settings the model was trained with, or serve "
        "a model trained on the current features"
    )
    if stored is None:
        raise FeatureVersionMismatchError(
            f"{model.name} {model.version} retrieves from Weaviate collection {collection!r} "
            f"at {settings.weaviate.endpoint_label}, which holds no loaded features; {rerun}"
        )
    if stored != trained:
        raise FeatureVersionMismatchError(
            f"{model.name} {model.version} was trained on features {trained} but collection "
            f"{collection!r} now holds features {stored}; {rerun}"
        )
    queries = feature_version(settings.features)
    if queries != trained:
        embedding = embedding_identity(settings.features.embedding)
        raise FeatureVersionMismatchError(
            f"questions would be cleaned and embedded as features {queries} (this process's "
            f"feature settings, embedding {embedding}), but {model.name} {model.version} and "
            f"collection {collection!r} use features {trained}: serve with the feature "
            "settings (TWIN_FEATURES__*) the collection was loaded with"
        )


def _weights(settings: TwinSettings, model: ModelVersion, model_dir: Path | None) -> Path:
    if model_dir is not None and (model_dir / WEIGHTS_MARKER).is_file():
        return model_dir
    if model_dir is not None:
        logger.info(
            "no weights in the given model directory; downloading",
            extra={"model_dir": str(model_dir), "uri": model.merged_uri},
        )
    try:
        directory = local_model_dir(model.merged_uri, settings)
    except FileNotFoundError as error:
        raise ModelNotServableError(
            f"{model.name} {model.version} has no merged weights at {model.merged_uri}: "
            "its training did not finish publishing; train it again"
        ) from error
    if not (directory / WEIGHTS_MARKER).is_file():
        raise ModelNotServableError(
            f"{model.merged_uri} (downloaded to {directory}) has no {WEIGHTS_MARKER}: it "
            "does not hold a merged model; check the registry entry of "
            f"{model.name} {model.version}"
        )
    return directory


def resolve_served_model(settings: TwinSettings, *, model_dir: Path | None = None) -> ServedModel:
    """The registry version to serve, checked, with its weights on local disk.

    ``model_dir`` is used when it holds a model (KServe's storage initializer puts the
    ``storageUri`` at ``/mnt/models``); otherwise the merged weights are downloaded once
    into the cache.
    """
    serving = settings.serving
    name = serving.model_name or settings.registry.default_model
    registry = ModelRegistry(settings.minio, settings.registry)
    model = _pick_version(registry, name, serving.version, serving.allow_unapproved)
    _check_status(model, serving.allow_unapproved)
    origin = _training_origin(settings, model)
    _check_features(settings, model, origin)
    served = ServedModel(
        name=model.name,
        version=model.version,
        status=str(model.status),
        author=origin.author,
        collection=origin.collection,
        feature_version=origin.feature_version,
        system_prompt=settings.datasets.system_prompt.format(author=origin.author),
        model_dir=_weights(settings, model, model_dir),
        merged_uri=model.merged_uri,
    )
    logger.info(
        "resolved the served model",
        extra={
            "model": served.label,
            "status": served.status,
            "author": served.author,
            "collection": served.collection,
            "feature_version": served.feature_version,
            "model_dir": str(served.model_dir),
        },
    )
    return served
