"""Refresh through the raw lake, as a pipeline pod runs it: the crawl state lives in MinIO.

Before, a second ``twin crawl`` fetched every page again and printed one line per source;
a cross-posted article was two documents.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.crawl.blog_sites import BLOG_POSTS, Site, blog_site
from twin_lib.cli import app
from twin_lib.crawl import Source
from twin_lib.crawl.syndication import SYNDICATED_AT
from twin_lib.settings import FeaturesSettings, TwinSettings, to_env
from twin_lib.steps.crawl import crawl_to_lake, state_key
from twin_lib.storage import ObjectStore, SnapshotStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def own_bucket(stack_settings: TwinSettings) -> TwinSettings:
    minio = stack_settings.minio.model_copy(update={"raw_bucket": f"raw-{uuid.uuid4().hex[:8]}"})
    return stack_settings.model_copy(update={"minio": minio})


@pytest.fixture
def blog() -> Iterator[Site]:
    with blog_site() as site:
        yield site


def loopback_features(**crawl: object) -> FeaturesSettings:
    features = FeaturesSettings()
    settings = features.crawl.model_copy(
        update={"allow_private_addresses": True, "rate_limit_per_host_s": 0.0, **crawl}
    )
    return features.model_copy(update={"crawl": settings})


def test_a_second_crawl_reuses_the_lakes_documents_and_sends_conditional_requests(
    own_bucket: TwinSettings, blog: Site, tmp_path: Path
) -> None:
    features = loopback_features()
    with blog_site() as mirror:
        mirror.pages["/copy"] = blog.pages["/posts/one"]
        sources = [Source(url=blog.base + "/"), Source(url=mirror.base + "/copy")]

        def crawl():
            return crawl_to_lake(
                sources,
                author="Ada",
                minio=own_bucket.minio,
                features=features,
                output=tmp_path / f"{uuid.uuid4().hex}.parquet",
            )

        first = crawl()
        blog.hits.clear()
        mirror.hits.clear()
        second = crawl()
    assert (first.documents, first.syndicated, first.reused) == (3, 1, 0)
    assert blog.count(200, BLOG_POSTS) == 0 and blog.count(304, BLOG_POSTS) == 3
    assert mirror.count(200, ("/copy",)) == 0 and mirror.count(304, ("/copy",)) == 1
    assert second.unchanged and second.snapshot_id == first.snapshot_id
    assert second.reused == 4  # three posts and the copy (merged again into one of them)
    objects = ObjectStore(own_bucket.minio)
    state = objects.get_json(
        own_bucket.minio.raw_bucket, state_key(features, "Ada", blog.base + "/")
    )
    assert state["snapshot_id"] == first.snapshot_id and len(state["document_ids"]) == 3
    table = SnapshotStore(objects, own_bucket.minio.raw_bucket).read_table(first.snapshot_id)
    [metadata] = [
        m
        for m, url in zip(
            table.column("metadata").to_pylist(),
            table.column("source_url").to_pylist(),
            strict=True,
        )
        if url == blog.base + "/posts/one"
    ]
    assert f'"{SYNDICATED_AT}": "{mirror.base}/copy"' in metadata


def test_twin_crawl_prints_how_an_address_expanded_and_what_it_skipped(
    own_bucket: TwinSettings, blog: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = own_bucket.model_copy(update={"features": loopback_features()})
    for key, value in to_env(settings).items():
        monkeypatch.setenv(key, value)
    command = ["crawl", blog.base + "/docs/", "--author", "Ada", "--workdir", str(tmp_path)]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    assert f"{blog.base}/docs/ via sitemap: 5 pages found, 3 taken, 2 left out" in first.output
    assert "1 left out: disallowed by robots.txt" in first.output
    assert "1 left out: search page" in first.output
    assert "0 unchanged since the last crawl" in first.output
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0, again.output
    assert "3 unchanged since the last crawl (not fetched again)" in again.output
