"""Planning which documents to load: pure, so every case is spelled out here."""

from __future__ import annotations

from datetime import UTC, datetime

from twin_lib.domain import Category, RawDocument
from twin_lib.steps.features import SyncedDocument, decide


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


def synced(document: RawDocument) -> SyncedDocument:
    return SyncedDocument(origin=document.origin, content_hash=document.content_hash)


def test_loaded_and_recorded_documents_are_unchanged() -> None:
    a, b = doc("a", "first text"), doc("b", "second text")
    stored = {a.document_id: {a.content_hash}, b.document_id: {b.content_hash}}
    state = {a.document_id: synced(a), b.document_id: synced(b)}
    plan = decide([a, b], [a, b], ["/essays"], stored, state)
    assert (plan.upsert, plan.delete, plan.unchanged) == ([], [], 2)


def test_a_load_that_died_before_its_state_was_recorded_is_redone() -> None:
    a = doc("a", "first text")
    plan = decide([a], [a], ["/essays"], {a.document_id: {a.content_hash}}, {})
    assert plan.upsert == [a.document_id]


def test_chunks_missing_from_the_store_are_reloaded_despite_the_state() -> None:
    a = doc("a", "first text")
    plan = decide([a], [a], ["/essays"], {}, {a.document_id: synced(a)})
    assert plan.upsert == [a.document_id]


def test_changed_text_and_mixed_hashes_are_reloaded() -> None:
    old, new = doc("a", "first text"), doc("a", "first text, revised")
    assert old.document_id == new.document_id
    stored = {new.document_id: {old.content_hash, new.content_hash}}
    plan = decide([new], [new], ["/essays"], stored, {new.document_id: synced(new)})
    assert plan.upsert == [new.document_id]


def test_vanished_documents_are_deleted_only_when_their_source_was_crawled() -> None:
    a, b = doc("a", "first text"), doc("b", "second text", origin="https://blog.example")
    state = {a.document_id: synced(a), b.document_id: synced(b)}
    plan = decide([], [], ["/essays"], {}, state)
    assert plan.delete == [a.document_id]
