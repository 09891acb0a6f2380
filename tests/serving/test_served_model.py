"""resolve_served_model against the real stack: which version is served, and what is refused.

Extra versions are registered under their own model names, so the fixture's model stays
the newest approved one for every other test.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.support.serving_data import ServedSetup, register_model
from twin_lib.domain.datasets import DatasetManifest
from twin_lib.registry.models import ModelStatus
from twin_lib.registry.store import ModelRegistry
from twin_lib.settings import TwinSettings
from twin_lib.steps.dataset_store import MANIFEST, snapshot_prefix
from twin_lib.steps.feature_state import collection_feature_version
from twin_lib.steps.serving import (
    FeatureVersionMismatchError,
    ModelNotServableError,
    resolve_served_model,
)
from twin_lib.storage import ObjectStore

pytestmark = pytest.mark.integration

APPROVED, CANDIDATE, REJECTED = ModelStatus.APPROVED, ModelStatus.CANDIDATE, ModelStatus.REJECTED


def serving(settings: TwinSettings, **changes: object) -> TwinSettings:
    return settings.model_copy(update={"serving": settings.serving.model_copy(update=changes)})


def fresh_name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _snapshots(setup: ServedSetup) -> dict[str, str]:
    registry = ModelRegistry(setup.settings.minio, setup.settings.registry)
    return registry.get(setup.model.name, setup.model.version).dataset_snapshots


def copied_manifest(setup: ServedSetup, **changes: str) -> str:
    """A copy of the model's instruction manifest with ``changes``; returns its snapshot id."""
    minio = setup.settings.minio
    objects = ObjectStore(minio)
    source = _snapshots(setup)["instruction"]
    manifest = DatasetManifest.model_validate(
        objects.get_json(
            minio.datasets_bucket, f"{snapshot_prefix('instruction', source)}/{MANIFEST}"
        )
    )
    snapshot = f"instruction-{uuid.uuid4().hex[:16]}"
    copy = manifest.model_copy(update={"snapshot_id": snapshot, **changes})
    objects.put_json(
        minio.datasets_bucket,
        f"{snapshot_prefix('instruction', snapshot)}/{MANIFEST}",
        copy.model_dump(mode="json"),
    )
    return snapshot


def test_the_fixture_model_is_resolved_with_its_lineage(served_setup: ServedSetup) -> None:
    model, settings = served_setup.model, served_setup.settings
    assert (model.status, model.author) == ("approved", served_setup.author)
    assert model.collection == settings.weaviate.collection
    assert model.feature_version == collection_feature_version(
        settings.weaviate, settings.minio, model.collection
    )
    assert model.system_prompt == settings.datasets.system_prompt.format(author="Ada")
    assert (model.model_dir / "config.json").is_file()
    assert model.model_dir.is_relative_to(settings.stack.cache_dir)  # downloaded, not the source
    assert model.merged_uri.endswith(f"/{model.name}/{model.version}/merged/")


def test_newest_approved_version_is_picked_and_candidates_only_on_request(
    served_setup: ServedSetup,
) -> None:
    name, snapshots = fresh_name(), _snapshots(served_setup)
    weights = served_setup.base_model
    settings = serving(served_setup.settings, model_name=name, version=None)
    approved = register_model(settings, name, weights, snapshots, (APPROVED,))
    candidate = register_model(settings, name, weights, snapshots, ())
    register_model(settings, name, weights, snapshots, (REJECTED,))

    assert resolve_served_model(settings, model_dir=weights).version == approved.version
    trial = serving(settings, allow_unapproved=True)
    assert resolve_served_model(trial, model_dir=weights).version == candidate.version


def test_a_candidate_is_refused_unless_allowed(served_setup: ServedSetup) -> None:
    name = fresh_name()
    settings = serving(served_setup.settings, model_name=name, version=None)
    candidate = register_model(
        settings, name, served_setup.base_model, _snapshots(served_setup), ()
    )

    with pytest.raises(ModelNotServableError) as unnamed:
        resolve_served_model(settings)
    assert f"versions: {candidate.version} (candidate)" in str(unnamed.value)
    named = serving(settings, version=candidate.version)
    with pytest.raises(ModelNotServableError) as refused:
        resolve_served_model(named)
    message = str(refused.value)
    assert f"twin models status {name} {candidate.version} approved" in message
    assert "TWIN_SERVING__ALLOW_UNAPPROVED" in message

    allowed = resolve_served_model(serving(named, allow_unapproved=True))
    assert (allowed.version, allowed.status) == (candidate.version, "candidate")


def test_a_rejected_version_is_never_served(served_setup: ServedSetup) -> None:
    name = fresh_name()
    settings = serving(served_setup.settings, model_name=name, allow_unapproved=True)
    rejected = register_model(
        settings, name, served_setup.base_model, _snapshots(served_setup), (REJECTED,)
    )

    with pytest.raises(ModelNotServableError, match="rejected, which is final"):
        resolve_served_model(serving(settings, version=rejected.version))
    with pytest.raises(ModelNotServableError, match=f"{rejected.version} \\(rejected\\)"):
        resolve_served_model(serving(settings, version=None))


def test_an_unknown_version_names_the_known_ones(served_setup: ServedSetup) -> None:
    settings = serving(served_setup.settings, version="v0099")

    with pytest.raises(ModelNotServableError) as error:
        resolve_served_model(settings)
    assert "v0099" in str(error.value) and served_setup.model.version in str(error.value)
    assert "TWIN_SERVING__VERSION" in str(error.value)


def test_model_dir_is_used_when_it_holds_a_model(served_setup: ServedSetup, tmp_path: Path) -> None:
    given = resolve_served_model(served_setup.settings, model_dir=served_setup.base_model)
    assert given.model_dir == served_setup.base_model

    empty = tmp_path / "mnt-models"
    empty.mkdir()
    downloaded = resolve_served_model(served_setup.settings, model_dir=empty)
    assert downloaded.model_dir == served_setup.model.model_dir
    assert (downloaded.model_dir / "config.json").read_bytes() == (
        served_setup.base_model / "config.json"
    ).read_bytes()


def test_a_model_trained_on_other_features_is_refused(served_setup: ServedSetup) -> None:
    name = fresh_name()
    settings = serving(served_setup.settings, model_name=name, version=None)
    stale = copied_manifest(served_setup, feature_version="0ldf3a7u4e5s")
    register_model(settings, name, served_setup.base_model, {"instruction": stale})

    with pytest.raises(FeatureVersionMismatchError) as error:
        resolve_served_model(settings, model_dir=served_setup.base_model)
    message = str(error.value)
    assert "0ldf3a7u4e5s" in message and served_setup.model.feature_version in message
    assert "re-run the feature pipeline" in message


def test_a_model_trained_on_chunks_of_two_feature_versions_is_refused(
    served_setup: ServedSetup,
) -> None:
    name = fresh_name()
    settings = serving(served_setup.settings, model_name=name, version=None)
    mixed = copied_manifest(
        served_setup, feature_version=f"{served_setup.model.feature_version}+0ldf3a7u4e5s"
    )
    register_model(settings, name, served_setup.base_model, {"instruction": mixed})

    with pytest.raises(ModelNotServableError, match="disagree on the feature version"):
        resolve_served_model(settings, model_dir=served_setup.base_model)


def test_a_collection_without_features_is_refused(served_setup: ServedSetup) -> None:
    name = fresh_name()
    settings = serving(served_setup.settings, model_name=name, version=None)
    gone = copied_manifest(served_setup, collection="NeverLoaded")
    register_model(settings, name, served_setup.base_model, {"instruction": gone})

    with pytest.raises(FeatureVersionMismatchError, match=r"'NeverLoaded'.*holds no loaded"):
        resolve_served_model(settings, model_dir=served_setup.base_model)


def test_queries_made_with_other_feature_settings_are_refused(served_setup: ServedSetup) -> None:
    settings = served_setup.settings
    chunking = settings.features.chunking.model_copy(
        update={
            "article": settings.features.chunking.article.model_copy(update={"max_tokens": 128})
        }
    )
    other = settings.model_copy(
        update={"features": settings.features.model_copy(update={"chunking": chunking})}
    )

    with pytest.raises(FeatureVersionMismatchError, match="TWIN_FEATURES__"):
        resolve_served_model(other, model_dir=served_setup.base_model)
