"""The whole feature pipeline through KFP local execution against the real local stack."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin_lib.cli import app
from twin_lib.crawl import Source, crawl_sources
from twin_lib.demo.corpus import load_chapters, write_markdown_folder
from twin_lib.features.chunking import chunk_document
from twin_lib.features.cleaning import clean_document
from twin_lib.features.embedding import load_model, model_window
from twin_lib.settings import FeaturesSettings, TwinSettings, to_env
from twin_lib.steps.crawl import RAW_DATASET
from twin_lib.storage import ObjectStore, SnapshotStore, VectorStore, chunk_collection_schema

pytestmark = pytest.mark.integration


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    """Eight real chapters as a Markdown folder (one stub too short to pass) and a git repo."""
    folder = write_markdown_folder(load_chapters(8), tmp_path / "essays")
    (folder / "stub.md").write_text("# Stub\n\nAmen.\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text("# Tools\n\n" + "Notes on building tools that last. " * 40)
    (repo / "tool.py").write_text("def run() -> int:\n    return 42\n" * 30)
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "init"]):
        subprocess.run(
            ["git", "-c", "user.name=T", "-c", "user.email=t@example.org", *args],
            cwd=repo,
            check=True,
        )
    return folder, repo


def expected_chunks(sources: list[str], features: FeaturesSettings) -> int:
    report = crawl_sources([Source(url=s) for s in sources], author="Ada", settings=features.crawl)
    model = load_model(features.embedding.model, features.embedding.device)
    return sum(
        len(
            chunk_document(
                clean_document(d),
                features.chunking.for_category(d.category),
                model.tokenizer,
                model_window(model),
                max_chars=features.chunking.max_chunk_chars,
            )
        )
        for d in report.documents
        if len(d.text.strip()) >= features.quality.min_document_chars
    )


def run_pipeline(sources: list[str], root: Path) -> str:
    """``twin pipeline run feature --local``, exactly as a user types it."""
    arguments = ["pipeline", "run", "feature", "--local", "--author", "Ada"]
    for source in sources:
        arguments += ["--source", source]
    result = CliRunner().invoke(app, [*arguments, "--pipeline-root", str(root)])
    assert result.exit_code == 0, result.output
    return result.output


def metrics_of(root: Path, name: str) -> dict[str, float]:
    """The newest run's metrics of one task, as KFP local recorded them for the UI."""
    newest = sorted(root.glob(f"*/{name}/executor_output.json"))[-1]
    output = json.loads(newest.read_text())
    return output["artifacts"]["metrics"]["artifacts"][0]["metadata"]


@pytest.mark.timeout(1200)  # two whole pipeline runs, each step a fresh process
def test_pipeline_fills_stores_and_a_rerun_applies_changes_and_deletions(
    stack_settings: TwinSettings, corpus, tmp_path, monkeypatch
):
    for key, value in to_env(stack_settings).items():
        monkeypatch.setenv(key, value)
    folder, repo = corpus
    sources = [str(folder), str(repo)]
    features = FeaturesSettings()
    root = tmp_path / "kfp"
    schema = chunk_collection_schema(
        stack_settings.weaviate.collection, features.embedding.dimensions
    )
    objects = ObjectStore(stack_settings.minio)
    snapshots = SnapshotStore(objects, stack_settings.minio.raw_bucket)
    chunks = expected_chunks(sources, features)

    output = run_pipeline(sources, root)

    assert "finished locally; 2 reports" in output
    [snapshot] = snapshots.list(RAW_DATASET)
    assert snapshot.record_count == 8 + 1 + 2
    quarantine = objects.get_bytes(
        stack_settings.minio.raw_bucket, f"quarantine/raw_documents/{snapshot.id}.jsonl"
    ).decode()
    [bad] = [json.loads(line) for line in quarantine.splitlines()]
    assert bad["record"]["title"] == "Stub" and "text_chars" in bad["reasons"][0]
    with VectorStore(stack_settings.weaviate) as store:
        assert store.count(schema) == chunks
        assert store.count(schema, {"category": "repository"}) >= 2
    assert metrics_of(root, "validate-documents")["raw_documents_quarantined"] == 1
    assert metrics_of(root, "load")["documents_loaded"] == 10
    assert list(root.glob("*/validate-documents/report"))
    assert "<!doctype html>" in next(root.glob("*/validate-chunks/report")).read_text()

    # An unchanged re-run loading nothing is proven by `twin demo`'s second run
    # (tests/demo); this one changes a chapter and deletes another.
    (folder / "Ge-001.md").write_text("# Ge 1\n\nIn the beginning was a shorter chapter.\n")
    (folder / "Ge-002.md").unlink()
    run_pipeline(sources, root)

    assert len(snapshots.list(RAW_DATASET)) == 2
    plan = metrics_of(root, "plan-sync")
    assert (plan["documents_to_load"], plan["documents_to_delete"]) == (1, 1)
    with VectorStore(stack_settings.weaviate) as store:
        assert store.count(schema) == expected_chunks(sources, features)
        ge1 = store.count(schema, {"title": "Ge 1"})
        assert ge1 == 1
        assert store.count(schema, {"title": "Ge 2"}) == 0
