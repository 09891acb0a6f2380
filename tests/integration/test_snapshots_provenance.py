"""A raw snapshot is what was crawled, from where, for whom: not only which text."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin_lib.cli import app
from twin_lib.crawl import Source
from twin_lib.settings import FeaturesSettings, TwinSettings, to_env
from twin_lib.steps.crawl import RAW_DATASET, crawl_to_lake
from twin_lib.storage import ObjectStore, SnapshotStore

pytestmark = pytest.mark.integration

TEXT = "# Rivers\n\nA note about rivers, lakes and the long way water travels to the sea.\n"


@pytest.fixture
def own_bucket(stack_settings: TwinSettings) -> TwinSettings:
    minio = stack_settings.minio.model_copy(update={"raw_bucket": f"raw-{uuid.uuid4().hex[:8]}"})
    return stack_settings.model_copy(update={"minio": minio})


def folder_with_note(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "rivers.md").write_text(TEXT)
    return path


def test_the_same_text_at_a_new_url_is_a_new_snapshot_with_the_authors_parent(
    own_bucket: TwinSettings, tmp_path: Path
) -> None:
    old_home = folder_with_note(tmp_path / "old-home")
    new_home = folder_with_note(tmp_path / "new-home")

    def crawl(folder: Path, author: str):
        return crawl_to_lake(
            [Source(url=str(folder))],
            author=author,
            minio=own_bucket.minio,
            features=FeaturesSettings(),
            output=tmp_path / f"{uuid.uuid4().hex}.parquet",
        )

    first = crawl(old_home, "Ada")
    other_author = crawl(old_home, "Bob")
    moved = crawl(new_home, "Ada")
    assert other_author.snapshot_id != first.snapshot_id
    assert not moved.unchanged and moved.snapshot_id != first.snapshot_id
    assert moved.parent_snapshot_id == first.snapshot_id  # not Bob's, although newer

    snapshots = SnapshotStore(ObjectStore(own_bucket.minio), own_bucket.minio.raw_bucket)
    urls = snapshots.read_table(moved.snapshot_id).column("source_url").to_pylist()
    assert len(urls) == 1 and "new-home" in urls[0]
    assert snapshots.get(moved.snapshot_id).labels == {"author": "Ada"}

    again = crawl(new_home, "Ada")
    assert again.unchanged and again.snapshot_id == moved.snapshot_id
    assert len(snapshots.list(RAW_DATASET)) == 3


def test_crawl_creates_a_new_workdir_and_leaves_no_empty_temp_folder(
    own_bucket: TwinSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in to_env(own_bucket).items():
        monkeypatch.setenv(key, value)
    folder = folder_with_note(tmp_path / "notes")
    workdir = tmp_path / "new" / "workdir"
    made = CliRunner().invoke(
        app, ["crawl", str(folder), "--author", "Ada", "--workdir", str(workdir)]
    )
    assert made.exit_code == 0, made.output
    assert (workdir / "raw_documents.parquet").is_file()

    temp_root = tmp_path / "tmp"
    temp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_root))
    failed = CliRunner().invoke(app, ["crawl", str(tmp_path / "missing"), "--author", "Ada"])
    assert failed.exit_code == 1
    assert "no source could be crawled" in failed.output
    assert list(temp_root.iterdir()) == []
