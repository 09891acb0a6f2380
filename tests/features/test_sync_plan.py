"""Planning which documents to load: pure, so every case is spelled out here."""

from __future__ import annotations

from datetime import UTC, datetime

from twin_lib.domain import Category, RawDocument
from twin_lib.features.sync import SyncedDocument, decide

FV = "fv1"


def doc(name: str, text: str, origin: str = "/essays") -> RawDocument:
    return RawDocument.create(
        author="Ada",
        category=Category.ARTICLE,
        source_url=f"file:///essays/{name}.md",
        origin=origin,
        title=name,
        text=text,
        crawled_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def synced(document: RawDocument, version: str = FV, chunks: int = 2) -> SyncedDocument:
    return SyncedDocument(
        origin=document.origin,
        content_hash=document.content_hash,
        author=document.author,
        feature_version=version,
        chunks=chunks,
    )


def stored(*documents: RawDocument, version: str = FV) -> dict[str, set[tuple[str, str]]]:
    return {d.document_id: {(d.content_hash, version)} for d in documents}


def test_loaded_and_recorded_documents_are_unchanged() -> None:
    a, b = doc("a", "first text"), doc("b", "second text")
    state = {a.document_id: synced(a), b.document_id: synced(b)}
    plan = decide([a, b], [a, b], ["/essays"], stored(a, b), state, FV)
    assert (plan.upsert, plan.delete, plan.unchanged) == ([], [], 2)


def test_a_load_that_died_before_its_state_was_recorded_is_redone() -> None:
    a = doc("a", "first text")
    plan = decide([a], [a], ["/essays"], stored(a), {}, FV)
    assert plan.upsert == [a.document_id]


def test_chunks_missing_from_the_store_are_reloaded_despite_the_state() -> None:
    a = doc("a", "first text")
    plan = decide([a], [a], ["/essays"], {}, {a.document_id: synced(a)}, FV)
    assert plan.upsert == [a.document_id]


def test_changed_text_and_mixed_hashes_are_reloaded() -> None:
    old, new = doc("a", "first text"), doc("a", "first text, revised")
    assert old.document_id == new.document_id
    both = {new.document_id: {(old.content_hash, FV), (new.content_hash, FV)}}
    plan = decide([new], [new], ["/essays"], both, {new.document_id: synced(new)}, FV)
    assert plan.upsert == [new.document_id]


def test_a_new_feature_version_reprocesses_unchanged_text() -> None:
    a = doc("a", "first text")
    plan = decide([a], [a], ["/essays"], stored(a), {a.document_id: synced(a)}, "fv2")
    assert plan.upsert == [a.document_id]
    assert plan.current[a.document_id].feature_version == "fv2"


def test_a_document_without_chunks_is_done_once_recorded() -> None:
    """It used to be re-processed on every run: the store never holds chunks for it."""
    a = doc("a", "first text")
    plan = decide([a], [a], ["/essays"], {}, {a.document_id: synced(a, chunks=0)}, FV)
    assert (plan.upsert, plan.unchanged) == ([], 1)


def test_only_complete_listings_delete_what_they_no_longer_contain() -> None:
    """A feed is a rolling window and a failed fetch is not a deletion."""
    in_folder = doc("a", "first text")
    in_feed = doc("b", "second text", origin="https://blog.example/feed.xml")
    failed = doc("c", "third text", origin="/elsewhere")
    state = {d.document_id: synced(d) for d in (in_folder, in_feed, failed)}
    plan = decide([], [], ["/essays"], {}, state, FV)
    assert plan.delete == [in_folder.document_id]
