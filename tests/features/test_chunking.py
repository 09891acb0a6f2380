from __future__ import annotations

import pytest

from twin_lib.domain import Category, CleanedDocument, RawDocument
from twin_lib.features.chunking import (
    chunk_document,
    sentence_starts,
    split_long_tokens,
    token_windows,
)
from twin_lib.features.cleaning import clean_document
from twin_lib.features.embedding import model_window
from twin_lib.settings import ChunkingSettings, ChunkSpec, FeaturesSettings

SENTENCE = "And the evening and the morning were the first day, unbelievably wonderful. "
MAX_CHARS = ChunkingSettings().max_chunk_chars


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
    chunks = chunk_document(document, spec, embedding_model.tokenizer, window, max_chars=MAX_CHARS)
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
        max_chars=MAX_CHARS,
    )
    assert all(c.text.endswith("wonderful.") for c in chunks)
    assert " ".join(c.text for c in chunks) == (SENTENCE * 60).strip()


@pytest.mark.parametrize(("overlap", "shared"), [(10, True), (0, False)])
def test_overlap_repeats_the_tail_of_the_previous_chunk(embedding_model, overlap, shared):
    """Every word is distinct, so a chunk can only contain its predecessor's words by overlap."""
    text = " ".join(f"river{i}" for i in range(200))
    chunks = chunk_document(
        cleaned(text, Category.POST),
        ChunkSpec(max_tokens=50, overlap_tokens=overlap),
        embedding_model.tokenizer,
        model_window(embedding_model),
        max_chars=MAX_CHARS,
    )
    first, second = chunks[0].text.split(), chunks[1].text.split()
    repeated = [word for word in second if word in set(first)]
    if shared:
        assert repeated and second[: len(repeated)] == first[-len(repeated) :]
    else:
        assert repeated == [] and second[0] == f"river{len(first)}"


def test_chunking_is_deterministic_and_empty_text_has_no_chunks(embedding_model):
    spec = FeaturesSettings().chunking.for_category(Category.POST)
    window = model_window(embedding_model)
    document = cleaned(SENTENCE * 30, Category.POST)
    first = chunk_document(document, spec, embedding_model.tokenizer, window, max_chars=MAX_CHARS)
    second = chunk_document(document, spec, embedding_model.tokenizer, window, max_chars=MAX_CHARS)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in second]
    blank = cleaned("   ", Category.POST)
    assert chunk_document(blank, spec, embedding_model.tokenizer, window, max_chars=MAX_CHARS) == []


def test_chunk_ids_differ_between_feature_versions(embedding_model):
    spec = FeaturesSettings().chunking.for_category(Category.POST)
    document = cleaned(SENTENCE * 10, Category.POST)
    ids = [
        {
            c.chunk_id
            for c in chunk_document(
                document,
                spec,
                embedding_model.tokenizer,
                model_window(embedding_model),
                max_chars=MAX_CHARS,
                feature_version=version,
            )
        }
        for version in ("v1", "v2")
    ]
    assert ids[0] and not ids[0] & ids[1]


def test_a_token_longer_than_the_cap_is_cut_into_pieces():
    offsets, words = split_long_tokens([(0, 3), (4, 14), (15, 17)], [0, 1, 2], 4)
    assert offsets == [(0, 3), (4, 8), (8, 12), (12, 14), (15, 17)]
    assert len(set(words)) == 5


def test_windows_respect_the_character_cap():
    offsets = [(i * 10, i * 10 + 9) for i in range(10)]
    windows = token_windows(offsets, list(range(10)), limit=8, overlap=0, max_chars=30)
    assert windows == [(0, 3), (3, 6), (6, 9), (9, 10)]


def test_a_huge_run_without_spaces_becomes_capped_chunks_not_one_unknown_token(embedding_model):
    """1.5 MB with no space is ONE [UNK] token to the tokenizer: without a character cap it
    became a single chunk of 1.5 MB counted as 1 token."""
    blob = "Q" * 1_500_000
    document = cleaned(f"{SENTENCE * 3}\n\n{blob}\n\n{SENTENCE * 3}", Category.POST)
    chunks = chunk_document(
        document,
        FeaturesSettings().chunking.for_category(Category.POST),
        embedding_model.tokenizer,
        model_window(embedding_model),
        max_chars=MAX_CHARS,
    )
    assert max(len(c.text) for c in chunks) <= MAX_CHARS
    assert sum(len(c.text) for c in chunks if set(c.text) == {"Q"}) == len(blob)
    assert chunks[0].text.startswith("And the evening") and "Q" not in chunks[0].text
