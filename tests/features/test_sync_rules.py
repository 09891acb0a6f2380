"""The sync's rules on the real stack: what is deleted, re-processed, recorded and refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin_lib.cli import app
from twin_lib.domain import Category, RawDocument
from twin_lib.domain.records import write_records
from twin_lib.features.version import feature_version
from twin_lib.settings import ChunkingSettings, ChunkSpec, FeaturesSettings, TwinSettings, to_env
from twin_lib.steps.feature_run import sync_documents
from twin_lib.steps.feature_state import EmbeddingMismatchError, collection_feature_version
from twin_lib.steps.features import (
    chunk_documents,
    clean_documents,
    embed_chunk_file,
    load_features,
    plan_sync,
    validate_embedded_chunks,
)
from twin_lib.storage import VectorStore, chunk_collection_schema

pytestmark = pytest.mark.integration

FOLDER = "/essays"
FEED = "https://blog.example.org/feed.xml"
PAGE = "https://blog.example.org/about"


def doc(name: str, origin: str, text: str | None = None) -> RawDocument:
    return RawDocument.create(
        text=text or f"{name.capitalize()} is a short note about rivers, lakes and the sea.",
        author="Ada",
        source_url=f"https://blog.example.org/{name}" if origin != FOLDER else f"file:///{name}",
        origin=origin,
        category=Category.POST,
    )


def sync(
    settings: TwinSettings,
    documents: list[RawDocument],
    complete: list[str],
    workdir: Path,
    features: FeaturesSettings | None = None,
) -> dict[str, float]:
    """Everything after the crawl, from these documents as if a crawl had found them."""
    workdir.mkdir(parents=True)
    raw = workdir / "raw_documents.parquet"
    write_records(raw, documents, RawDocument)
    return sync_documents(
        raw,
        complete,
        workdir=workdir,
        minio=settings.minio,
        weaviate=settings.weaviate,
        features=features or FeaturesSettings(),
    )


def chunks_of(settings: TwinSettings, *documents: RawDocument) -> list[int]:
    schema = chunk_collection_schema(settings.weaviate.collection, 384)
    with VectorStore(settings.weaviate) as store:
        return [store.count(schema, {"document_id": d.document_id}) for d in documents]


def feature_versions(settings: TwinSettings) -> set[str]:
    schema = chunk_collection_schema(settings.weaviate.collection, 384)
    with VectorStore(settings.weaviate) as store:
        rows = store.iter_properties(schema, ["feature_version"])
        return {row["feature_version"] for row in rows}


def test_only_a_complete_listing_deletes_and_forget_source_removes_a_source(
    private: TwinSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept, removed = doc("kept", FOLDER), doc("removed", FOLDER)
    fresh, older = doc("fresh", FEED), doc("older", FEED)
    page = doc("about", PAGE)
    sync(private, [kept, removed, fresh, older, page], [FOLDER], tmp_path / "w1")
    assert chunks_of(private, kept, removed, fresh, older, page) == [1, 1, 1, 1, 1]

    # The folder lost a file, the feed's window moved past `older`, the page failed to fetch.
    second = sync(private, [kept, fresh], [FOLDER], tmp_path / "w2")
    assert second["documents_deleted"] == 1
    assert chunks_of(private, kept, removed, fresh, older, page) == [1, 0, 1, 1, 1]

    for key, value in to_env(private).items():
        monkeypatch.setenv(key, value)
    forgotten = CliRunner().invoke(app, ["forget-source", FEED, "--author", "Ada"])
    assert forgotten.exit_code == 0, forgotten.output
    assert f"forgot {FEED} of Ada: 2 documents and 2 chunks deleted" in forgotten.output
    assert chunks_of(private, kept, fresh, older, page) == [1, 0, 0, 1]

    unknown = CliRunner().invoke(app, ["forget-source", FEED + "x", "--author", "Ada"])
    assert unknown.exit_code == 1
    assert "known sources" in unknown.output and PAGE in unknown.output

    third = sync(private, [kept, page], [FOLDER], tmp_path / "w3")
    assert (third["documents_loaded"], third["documents_unchanged"]) == (0, 2)


def test_a_feature_version_change_reprocesses_and_another_model_is_refused(
    private: TwinSettings, tmp_path: Path
) -> None:
    documents = [doc(name, FOLDER) for name in ("one", "two")]
    assert (
        collection_feature_version(private.weaviate, private.minio, private.weaviate.collection)
        is None
    )
    sync(private, documents, [FOLDER], tmp_path / "w1")
    before = feature_version(FeaturesSettings())
    assert feature_versions(private) == {before}
    assert (
        collection_feature_version(private.weaviate, private.minio, private.weaviate.collection)
        == before
    )

    rechunked = FeaturesSettings(
        chunking=ChunkingSettings(post=ChunkSpec(max_tokens=120, overlap_tokens=10))
    )
    after = feature_version(rechunked)
    assert after != before
    redone = sync(private, documents, [FOLDER], tmp_path / "w2", rechunked)
    assert (redone["documents_loaded"], redone["documents_unchanged"]) == (2, 0)
    assert feature_versions(private) == {after}
    assert chunks_of(private, *documents) == [1, 1]
    settled = sync(private, documents, [FOLDER], tmp_path / "w3", rechunked)
    assert settled["documents_loaded"] == 0

    other_model = rechunked.model_copy(
        update={"embedding": rechunked.embedding.model_copy(update={"revision": "other"})}
    )
    with pytest.raises(EmbeddingMismatchError, match="TWIN_WEAVIATE__COLLECTION"):
        sync(private, documents, [FOLDER], tmp_path / "w4", other_model)


def test_a_valid_document_without_chunks_is_recorded_as_done(
    private: TwinSettings, tmp_path: Path
) -> None:
    """Cleaning leaves nothing of an images-only post: it used to be re-processed every run."""
    images = doc("images", FOLDER, "![](a.png) ![](b.png) ![](c.png) ![](d.png)")
    words = doc("words", FOLDER)
    first = sync(private, [images, words], [FOLDER], tmp_path / "w1")
    assert first["documents_loaded"] == 2
    assert chunks_of(private, images, words) == [0, 1]
    again = sync(private, [images, words], [FOLDER], tmp_path / "w2")
    assert (again["documents_loaded"], again["documents_unchanged"]) == (0, 2)


def test_interleaved_runs_keep_each_others_state(
    private: TwinSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manual run loads while the nightly one is loading: neither may lose the other's state.

    The interleaving is forced: run B's whole load happens inside run A's chunk write, after
    A has planned (and, with a single state file, after A has read the state it will write).
    """
    features = FeaturesSettings()
    documents = {name: [doc(f"{name}{i}", f"/{name}") for i in range(2)] for name in "ab"}
    runs = {}
    for name in "ab":
        workdir = tmp_path / name
        workdir.mkdir()
        raw = workdir / "raw_documents.parquet"
        write_records(raw, documents[name], RawDocument)
        plan_sync(
            raw,
            raw,
            [f"/{name}"],
            output=workdir / "changed_documents.parquet",
            plan_path=workdir / "plan.json",
            minio=private.minio,
            weaviate=private.weaviate,
            features=features,
        )
        runs[name] = workdir
    for workdir in runs.values():
        steps_after_plan(private, workdir, features)

    upsert = VectorStore.upsert
    inside = []

    def upsert_then_let_the_other_run_load(self: VectorStore, schema: object, records: list):
        report = upsert(self, schema, records)
        if not inside:
            inside.append(True)
            load(private, runs["b"], features)
        return report

    monkeypatch.setattr(VectorStore, "upsert", upsert_then_let_the_other_run_load)
    load(private, runs["a"], features)
    monkeypatch.undo()

    rerun = sync(private, [*documents["a"], *documents["b"]], [], tmp_path / "rerun")
    assert (rerun["documents_loaded"], rerun["documents_unchanged"]) == (0, 4)


def steps_after_plan(settings: TwinSettings, workdir: Path, features: FeaturesSettings) -> None:
    clean_documents(workdir / "changed_documents.parquet", output=workdir / "cleaned.parquet")
    chunk_documents(
        workdir / "cleaned.parquet", output=workdir / "chunks.parquet", features=features
    )
    embed_chunk_file(
        workdir / "chunks.parquet",
        output=workdir / "embedded.parquet",
        features=features,
        minio=settings.minio,
    )
    validate_embedded_chunks(
        workdir / "embedded.parquet",
        output=workdir / "valid_chunks.parquet",
        report_path=workdir / "report.html",
        features=features,
        minio=settings.minio,
    )


def load(settings: TwinSettings, workdir: Path, features: FeaturesSettings) -> None:
    load_features(
        workdir / "valid_chunks.parquet",
        workdir / "plan.json",
        minio=settings.minio,
        weaviate=settings.weaviate,
        features=features,
    )
