"""Building examples from chunks: the system turn, ids, and the chunks' lineage fields."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from twin_lib.domain.chat import ChatMessage
from twin_lib.domain.datasets import InstructionExample, SourceChunk
from twin_lib.hashing import combined_hash, sha256_json


def system_turn(template: str, author: str) -> ChatMessage:
    """The system prompt says whose twin the model is; the same text at training and serving."""
    return ChatMessage(role="system", content=template.replace("{author}", author))


def example_id(*parts: object) -> str:
    """Derived from the example's content, so regenerating identical data gives identical ids."""
    return sha256_json(parts)[:24]


def instruction_example(
    chunk: SourceChunk, instruction: str, *, system: ChatMessage, generator: str
) -> InstructionExample:
    """The author's chunk is the answer: the twin learns the author's voice, not a paraphrase."""
    messages = [
        system,
        ChatMessage(role="user", content=instruction.strip()),
        ChatMessage(role="assistant", content=chunk.content.strip()),
    ]
    return InstructionExample(
        example_id=example_id(generator, chunk.chunk_id, [m.model_dump() for m in messages]),
        messages=messages,
        document_id=chunk.document_id,
        chunk_ids=[chunk.chunk_id],
        source_url=chunk.source_url,
        raw_snapshot_id=chunk.raw_snapshot_id,
        generator=generator,
    )


def source_chunks(rows: Iterable[dict], author: str) -> list[SourceChunk]:
    """The author's chunks from feature-store rows, in a stable (document, position) order.

    The order matters: deduplication keeps the first of equal texts, so it must not depend on
    the order the store happens to page objects in.
    """
    chunks = [
        SourceChunk(
            chunk_id=str(row["uuid"]),
            document_id=str(row["document_id"]),
            chunk_index=int(row.get("chunk_index") or 0),
            content=str(row.get("content") or ""),
            title=str(row.get("title") or ""),
            author=str(row["author"]),
            category=str(row.get("category") or ""),
            source_url=str(row.get("source_url") or ""),
            content_hash=str(row.get("content_hash") or ""),
            raw_snapshot_id=str(row.get("snapshot_id") or ""),
            feature_version=str(row.get("feature_version") or ""),
        )
        for row in rows
        if row.get("author") == author
    ]
    return sorted(chunks, key=lambda c: (c.document_id, c.chunk_index, c.chunk_id))


def features_hash(chunks: Sequence[SourceChunk]) -> str:
    """Identity of the feature-store content a dataset was built from (order-independent)."""
    return combined_hash(f"{c.chunk_id}:{c.content_hash}" for c in chunks)[:16]


def feature_versions(chunks: Sequence[SourceChunk]) -> str:
    """The recipe version(s) the chunks carry; "unversioned" for chunks loaded before them."""
    return "+".join(sorted({c.feature_version for c in chunks if c.feature_version})) or (
        "unversioned"
    )
