"""The embedding cache: a re-run, a new collection or a rebuild encodes only what is new."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer
from typer.testing import CliRunner

from tests.support.feature_runs import SimulatedCrashError
from tests.support.feature_runs import run_folder as run
from twin_lib.cli import app
from twin_lib.demo.corpus import load_chapters, write_markdown_folder
from twin_lib.domain import EmbeddedChunk
from twin_lib.domain.records import read_records
from twin_lib.features.version import feature_version
from twin_lib.hardware import cpu_bf16_support
from twin_lib.settings import EmbeddingSettings, FeaturesSettings, TwinSettings, to_env
from twin_lib.steps.embedding_cache import EmbeddingCache
from twin_lib.steps.features import rebuild_collection
from twin_lib.storage import ObjectStore, VectorStore

pytestmark = pytest.mark.integration


@pytest.fixture
def encoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many texts the real encoder was given, call by call (it still does the work)."""
    calls: list[int] = []
    encode = SentenceTransformer.encode

    def counting(self: SentenceTransformer, sentences: list[str], **kwargs: object) -> object:
        calls.append(len(sentences))
        return encode(self, sentences, **kwargs)

    monkeypatch.setattr(SentenceTransformer, "encode", counting)
    return calls


def in_collection(settings: TwinSettings, collection: str) -> dict[str, tuple[dict, list]]:
    """Every object of a collection: id -> (properties, vector)."""
    with VectorStore(settings.weaviate) as store:
        objects = store.connect().collections.get(collection).iterator(include_vector=True)
        return {str(o.uuid): (dict(o.properties), list(o.vector["default"])) for o in objects}


def with_collection(settings: TwinSettings, name: str) -> TwinSettings:
    weaviate = settings.weaviate.model_copy(update={"collection": name})
    return settings.model_copy(update={"weaviate": weaviate})


def test_a_new_collection_and_a_rerun_after_a_killed_load_encode_nothing(
    private: TwinSettings, tmp_path: Path, encoded: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_markdown_folder(load_chapters(3), tmp_path / "essays")
    first = run(private, folder, tmp_path / "w1")
    chunks = int(first["chunks_embedded"])
    assert sum(encoded) == chunks and first["embedding_cache_misses"] == chunks

    encoded.clear()
    other = with_collection(private, private.weaviate.collection + "b")
    again = run(other, folder, tmp_path / "w2")
    assert encoded == []
    assert (again["embedding_cache_hits"], again["documents_loaded"]) == (chunks, 3)
    vectors = [
        [c.embedding for c in read_records(w / "embedded_chunks.parquet", EmbeddedChunk)]
        for w in (tmp_path / "w1", tmp_path / "w2")
    ]
    assert vectors[0] == vectors[1]

    def killed(*args: object, **kwargs: object) -> None:
        raise SimulatedCrashError("load killed")

    third = with_collection(private, private.weaviate.collection + "c")
    (folder / "Ge-003.md").write_text("# Ge 3\n\nA new third chapter.\n", encoding="utf-8")
    monkeypatch.setattr(VectorStore, "upsert", killed)
    with pytest.raises(SimulatedCrashError):
        run(third, folder, tmp_path / "w3")
    monkeypatch.undo()
    assert encoded == [1]  # only the new chapter's one chunk

    encoded.clear()
    resumed = run(third, folder, tmp_path / "w4")
    assert encoded == [] and resumed["documents_loaded"] == 3


def test_rebuild_restores_the_collection_exactly_without_encoding(
    private: TwinSettings, tmp_path: Path, encoded: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_markdown_folder(load_chapters(3), tmp_path / "essays")
    run(private, folder, tmp_path / "w1")
    (folder / "Ge-002.md").write_text("# Ge 2\n\nA much shorter second chapter.\n")
    run(private, folder, tmp_path / "w2")  # a replaced document: its old chunks are gone
    before = in_collection(private, private.weaviate.collection)
    with VectorStore(private.weaviate) as store:
        store.drop_collection(private.weaviate.collection)  # Weaviate lost its data

    encoded.clear()
    for key, value in to_env(private).items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["rebuild-features"])
    assert result.exit_code == 0, result.output
    assert encoded == []
    assert f"3 documents, {len(before)} chunks" in result.output and "0 encoded" in result.output
    assert in_collection(private, private.weaviate.collection) == before

    settled = run(private, folder, tmp_path / "w3")
    assert (settled["documents_unchanged"], settled["chunks_written"]) == (3, 0)


@pytest.mark.skipif(not cpu_bf16_support()[0], reason="no bf16 matrix units here")
def test_bf16_and_fp32_vectors_never_mix(private: TwinSettings, tmp_path: Path) -> None:
    folder = write_markdown_folder(load_chapters(2), tmp_path / "essays")
    fp32 = FeaturesSettings(embedding=EmbeddingSettings(precision="fp32"))
    run(private, folder, tmp_path / "w1", embedding=fp32.embedding)
    with pytest.raises(ValueError, match="loaded as other features"):
        rebuild_collection(
            minio=private.minio, weaviate=private.weaviate, features=FeaturesSettings()
        )

    bf16 = run(private, folder, tmp_path / "w2")  # auto: bf16 on this processor
    assert (bf16["documents_loaded"], bf16["embedding_cache_hits"]) == (2, 0)
    stored = in_collection(private, private.weaviate.collection).values()
    assert {p["feature_version"] for p, _ in stored} == {feature_version(FeaturesSettings())}
    assert feature_version(FeaturesSettings()) != feature_version(fp32)


def test_many_small_cache_objects_are_merged_and_read_back_exactly(
    object_store: ObjectStore, unique_name: str
) -> None:
    object_store.ensure_buckets("features")
    cache = EmbeddingCache(object_store, "features", f"cache-{unique_name}", "encoder-x")
    slices = [{f"h{i}-{j}": [i + j / 3, -1.0 / (j + 1)] for j in range(3)} for i in range(20)]
    for vectors in slices:
        cache.store(vectors)
    wanted = {h: v for vectors in slices for h, v in vectors.items()}
    found = cache.lookup([*wanted, "not-cached"])
    as_float32 = {h: np.float32(v).tolist() for h, v in wanted.items()}
    assert found == as_float32
    assert len(object_store.list("features", cache.root + "/")) == 1
    assert cache.lookup(wanted) == as_float32
