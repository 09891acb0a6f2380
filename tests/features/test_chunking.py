from __future__ import annotations

import pytest

from twin_lib.domain import Category, CleanedDocument, RawDocument
from twin_lib.features.chunking import chunk_document, sentence_starts, token_windows
from twin_lib.features.cleaning import clean_document
from twin_lib.features.embedding import model_window
from twin_lib.settings import ChunkSpec, FeaturesSettings

SENTENCE = "And the evening and the morning were the first day, unbelievably wonderful. "


def cleaned(text: str, category: Category) -> CleanedDocument:
    return clean_document(
        RawDocument.create(
            text=text,
            author="a",
            source_url="https://x.org/d",
            origin="https://x.org",
            category=category,
        )
    )


def test_windows_respect_limit_words_and_overlap():
    # word ids: tokens 1-3 are one word, 5-6 another
    word_ids = [0, 1, 1, 1, 2, 3, 3, 4, 5, 6]
    offsets = [(i, i + 1) for i in range(10)]
    # The overlap after (0, 4) would start inside word 1, so it moves forward to word 2.
    assert token_windows(offsets, word_ids, limit=4, overlap=1) == [(0, 4), (4, 8), (7, 10)]


def test_window_cuts_a_word_longer_than_the_limit():
    windows = token_windows([(i, i + 1) for i in range(6)], [0] * 6, limit=4, overlap=0)
    assert windows == [(0, 4), (4, 6)]


def test_sentence_starts():
    assert sentence_starts("One. Two! Three?\n\nFour") == [0, 5, 10, 18]


@pytest.mark.parametrize("category", list(Category))
def test_every_chunk_fits_the_model_window(embedding_model, category):
    window = model_window(embedding_model)
    spec = FeaturesSettings().chunking.for_category(category)
    document = cleaned(SENTENCE * 120, category)
    chunks = chunk_document(document, spec, embedding_model.tokenizer, window)
    assert len(chunks) > 3
    for chunk in chunks:
        measured = len(embedding_model.tokenizer(chunk.text, add_special_tokens=False)["input_ids"])
        assert measured == chunk.token_count
        assert measured <= min(spec.max_tokens, window)
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_article_chunks_end_on_sentence_boundaries(embedding_model):
    spec = FeaturesSettings().chunking.for_category(Category.ARTICLE)
    chunks = chunk_document(
        cleaned(SENTENCE * 60, Category.ARTICLE),
        spec,
        embedding_model.tokenizer,
        model_window(embedding_model),
    )
    assert all(c.text.endswith("wonderful.") for c in chunks)
    assert " ".join(c.text for c in chunks) == (SENTENCE * 60).strip()


def test_overlap_repeats_the_tail_of_the_previous_chunk(embedding_model):
    spec = ChunkSpec(max_tokens=50, overlap_tokens=10)
    chunks = chunk_document(
        cleaned(SENTENCE * 20, Category.POST),
        spec,
        embedding_model.tokenizer,
        model_window(embedding_model),
    )
    tail = chunks[0].text.split()[-3:]
    assert chunks[1].text.split()[:12] != chunks[0].text.split()[:12]
    assert " ".join(tail) in chunks[1].text


def test_chunking_is_deterministic_and_empty_text_has_no_chunks(embedding_model):
    spec = FeaturesSettings().chunking.for_category(Category.POST)
    window = model_window(embedding_model)
    document = cleaned(SENTENCE * 30, Category.POST)
    first = chunk_document(document, spec, embedding_model.tokenizer, window)
    second = chunk_document(document, spec, embedding_model.tokenizer, window)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in second]
    assert (
        chunk_document(cleaned("   ", Category.POST), spec, embedding_model.tokenizer, window) == []
    )
