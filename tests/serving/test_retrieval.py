"""Retrieval on the labelled corpus in the real Weaviate, and the pure ranking and parsing.

The corpus (tests/support/serving_data.py) has one essay per question, the other author's
essays on the same topics in the question's own words, and one essay published twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from tests.support.serving_data import ESSAYS, ServedSetup
from twin_lib.domain import Category
from twin_lib.domain.chat import ChatMessage
from twin_lib.features.cleaning import clean_text
from twin_lib.features.embedding import embed_texts, load_model
from twin_lib.serving.contracts import Generation, GenerationParams, RetrievedChunk
from twin_lib.serving.query import QueryRewriter, parse_author, parse_phrasings
from twin_lib.serving.rerank import Candidate, cosine, deduplicate, make_reranker, select
from twin_lib.serving.retrieval import WeaviateRetriever, merge
from twin_lib.settings import RetrievalSettings
from twin_lib.storage import SearchHit, StorageError

SOURDOUGH = "How do you keep a sourdough starter alive?"
BICYCLE = "How do I fix a broken bicycle chain?"
KITES = "How do I fly a kite on the dunes?"


class ScriptedGenerator:
    """A test double for the twin's generator: it replies with a fixed text (or raises).

    What is under test is how the rewriter prompts and parses and how the retriever uses
    the result; no model on these machines writes lists of phrasings or names on request.
    """

    name = "scripted"

    def __init__(self, reply: str | Exception) -> None:
        self.reply = reply
        self.prompts: list[str] = []

    def generate(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Generation:
        self.prompts.append(messages[-1].content)
        if isinstance(self.reply, Exception):
            raise self.reply
        return Generation(
            text=self.reply, prompt_tokens=1, completion_tokens=1, finish_reason="stop"
        )

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Iterator[str | Generation]:
        generation = self.generate(messages, params)
        yield generation.text
        yield generation


@contextmanager
def retriever(
    setup: ServedSetup, rewriter: QueryRewriter | None = None, **retrieval: object
) -> Iterator[WeaviateRetriever]:
    settings = setup.settings
    found = WeaviateRetriever(
        settings.weaviate,
        settings.features.embedding,
        settings.serving.retrieval.model_copy(update=retrieval),
        collection=setup.model.collection,
        author=setup.author,
        rewriter=rewriter,
    )
    try:
        yield found
    finally:
        found.close()


def urls(chunks: list[RetrievedChunk]) -> list[str]:
    return [c.source_url for c in chunks]


# -- the labelled corpus --------------------------------------------------------------------


@pytest.mark.integration
def test_each_question_finds_its_essay_first_and_never_the_other_authors(
    served_setup: ServedSetup,
) -> None:
    with retriever(served_setup) as found:
        for question, expected in served_setup.questions:
            chunks = found.retrieve(question)
            assert urls(chunks)[0] == expected, question
            assert len(chunks) == served_setup.settings.serving.retrieval.top_k
            assert not set(urls(chunks)) & set(served_setup.other_urls), question
        # The other author wrote on the same topics in the questions' words: unfiltered,
        # their essays would come first.
        vector = found.model.encode([SOURDOUGH], normalize_embeddings=True)[0].tolist()
        unfiltered = found.store.hybrid(found.schema, SOURDOUGH, vector, limit=1)
        assert unfiltered[0].properties["source_url"] in served_setup.other_urls


@pytest.mark.integration
def test_one_retriever_serves_concurrent_questions(served_setup: ServedSetup) -> None:
    """The predictor shares one retriever between request threads."""
    questions = served_setup.questions * 2

    with retriever(served_setup) as found, ThreadPoolExecutor(16) as pool:
        firsts = list(pool.map(lambda labelled: urls(found.retrieve(labelled[0]))[0], questions))

    assert firsts == [expected for _, expected in questions]


@pytest.mark.integration
def test_scores_are_exact_cosines_to_the_question_best_first(served_setup: ServedSetup) -> None:
    settings = served_setup.settings.features.embedding
    model = load_model(settings.model, settings.device, settings.revision)
    question = clean_text(BICYCLE, Category.ARTICLE)
    everything = {"top_k": 50, "max_context_chars": 100_000}

    with retriever(served_setup, **everything) as found:
        chunks = found.retrieve(BICYCLE)
    with retriever(served_setup, reranker="none", **everything) as fused:
        fused_order = urls(fused.retrieve(BICYCLE))

    scores = [c.score for c in chunks]
    assert len(chunks) == len(ESSAYS)  # every essay once: the repost is dropped
    assert scores == sorted(scores, reverse=True)
    assert urls(chunks) != fused_order and urls(chunks)[0] == fused_order[0]
    # Encoded as the chunks and questions are (the settings' precision). Under bf16 a text's
    # vector moves by up to ~1e-3 with the batch it is encoded in, hence the tolerance.
    vectors = embed_texts([question, *(c.content for c in chunks)], model, settings)
    for chunk, vector in zip(chunks, vectors[1:], strict=True):
        assert chunk.score == pytest.approx(cosine(vectors[0], vector), abs=2e-3)


@pytest.mark.integration
def test_text_published_twice_comes_back_once(served_setup: ServedSetup) -> None:
    with retriever(served_setup) as found:
        chunks = found.retrieve(KITES)
        vector = embed_texts([KITES], found.model, found.embedding)[0]
        raw = found.store.hybrid(
            found.schema, KITES, vector, limit=4, filters={"author": served_setup.author}
        )

    assert {h.properties["source_url"] for h in raw[:2]} == set(served_setup.reposted_urls)
    assert len(set(urls(chunks)) & set(served_setup.reposted_urls)) == 1
    assert len({c.content_hash for c in chunks}) == len(chunks)


@pytest.mark.integration
def test_min_score_top_k_and_the_character_budget(served_setup: ServedSetup) -> None:
    with retriever(served_setup) as found:
        best = found.retrieve(SOURDOUGH)
    between = (best[0].score + best[1].score) / 2
    lengths = [len(c.content) for c in best]

    with retriever(served_setup, min_score=between) as found:
        assert urls(found.retrieve(SOURDOUGH)) == urls(best[:1])
    with retriever(served_setup, min_score=best[0].score + 0.01) as found:
        assert found.retrieve(SOURDOUGH) == []
    with retriever(served_setup, top_k=2) as found:
        assert urls(found.retrieve(SOURDOUGH)) == urls(best[:2])
    with retriever(served_setup, max_context_chars=sum(lengths[:3]) - 1) as found:
        assert urls(found.retrieve(SOURDOUGH)) == urls(best[:2])
    with retriever(served_setup, max_context_chars=200) as found:
        [cut] = found.retrieve(SOURDOUGH)
    assert len(cut.content) <= 200 and best[0].content.startswith(cut.content)
    assert cut.chunk_id == best[0].chunk_id


@pytest.mark.integration
def test_every_phrasing_is_searched_and_hits_are_merged(served_setup: ServedSetup) -> None:
    generator = ScriptedGenerator(f"1. {BICYCLE}\n2) {BICYCLE.upper()}\n- {SOURDOUGH}\n")
    rewriter = QueryRewriter(generator)

    with retriever(served_setup, rewriter, candidates=1, query_expansion=3) as found:
        expanded = found.retrieve(SOURDOUGH)
    with retriever(served_setup, rewriter, candidates=1) as found:
        alone = found.retrieve(SOURDOUGH)

    by_name = {q: u for q, u in served_setup.questions}
    assert urls(expanded) == [by_name[SOURDOUGH], by_name[BICYCLE]]
    assert urls(alone) == [by_name[SOURDOUGH]]
    assert len(generator.prompts) == 1 and "Write 3 different phrasings" in generator.prompts[0]


@pytest.mark.integration
def test_a_failing_rewriter_leaves_the_question_alone(served_setup: ServedSetup) -> None:
    rewriter = QueryRewriter(ScriptedGenerator(TimeoutError("generation timed out")))

    with retriever(served_setup, rewriter, query_expansion=2, self_query=True) as found:
        chunks = found.retrieve(SOURDOUGH)

    assert urls(chunks)[0] == dict(served_setup.questions)[SOURDOUGH]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("reply", "author"),
    [
        ("Bob", "other"),
        (" 'bob'. ", "other"),
        ("The question is about Bob.", "own"),
        ("Carol", "own"),
    ],
)
def test_self_query_accepts_only_a_known_author(
    served_setup: ServedSetup, reply: str, author: str
) -> None:
    generator = ScriptedGenerator(reply)

    with retriever(served_setup, QueryRewriter(generator), self_query=True) as found:
        chunks = found.retrieve(SOURDOUGH)

    assert "- Ada\n- Bob" in generator.prompts[0]
    other = set(served_setup.other_urls)
    if author == "other":
        assert set(urls(chunks)) <= other and urls(chunks)[0].endswith("/bob/sourdough.md")
    else:
        assert not set(urls(chunks)) & other


@pytest.mark.integration
def test_an_empty_question_retrieves_nothing(served_setup: ServedSetup) -> None:
    with retriever(served_setup) as found:
        assert found.retrieve(" \u200b\n\t ") == []


@pytest.mark.integration
def test_a_missing_collection_is_named(served_setup: ServedSetup) -> None:
    settings = served_setup.settings
    with pytest.raises(StorageError, match=r"no collection 'NoSuchChunks'.*feature pipeline"):
        WeaviateRetriever(
            settings.weaviate,
            settings.features.embedding,
            settings.serving.retrieval,
            collection="NoSuchChunks",
            author="Ada",
        )


# -- rerankers, deduplication and selection -------------------------------------------------


def test_a_cross_encoder_without_a_model_is_refused_clearly(tmp_path) -> None:
    with pytest.raises(ValueError, match="TWIN_SERVING__RETRIEVAL__CROSS_ENCODER_MODEL"):
        make_reranker(RetrievalSettings(reranker="cross-encoder"))
    missing = str(tmp_path / "no-such-cross-encoder")
    with pytest.raises(ValueError, match="could not be loaded") as error:
        make_reranker(RetrievalSettings(reranker="cross-encoder", cross_encoder_model=missing))
    assert missing in str(error.value) and "RERANKER=embedding" in str(error.value)


def candidate(
    chunk_id: str, vector: list[float], *, document: str = "d1", text: str | None = None,
    score: float = 0.5,
) -> Candidate:  # fmt: skip
    content = text or f"text of {chunk_id}"
    return Candidate(
        chunk=RetrievedChunk(
            chunk_id=chunk_id,
            document_id=document,
            content=content,
            source_url=f"file:///{document}",
            content_hash=f"hash of {content}",
            score=score,
        ),
        vector=vector,
    )


def test_duplicates_keep_the_best_ranked_of_each_group() -> None:
    best = candidate("a", [1.0, 0.0])
    same_id = candidate("a", [0.0, 1.0], document="d2", text="other")
    reposted = candidate("b", [0.0, 1.0], document="d3", text="text of a")
    near_same_document = candidate("c", [0.99, 0.05])
    near_other_document = candidate("d", [0.99, 0.05], document="d4")
    distinct_same_document = candidate("e", [0.6, 0.8])

    kept = deduplicate(
        [best, same_id, reposted, near_same_document, near_other_document, distinct_same_document]
    )

    assert [c.chunk.chunk_id for c in kept] == ["a", "d", "e"]


def test_merge_keeps_each_chunk_once_with_its_best_score() -> None:
    def hit(uuid: str, score: float) -> SearchHit:
        return SearchHit(uuid=uuid, properties={}, score=score)

    merged = merge([[hit("a", 0.4), hit("b", 0.9)], [hit("a", 0.95), hit("c", 0.1)]])

    assert [(h.uuid, h.score) for h in merged] == [("a", 0.95), ("b", 0.9), ("c", 0.1)]


def test_selection_stops_at_the_first_chunk_over_the_budget() -> None:
    long, short = "x" * 300, "y" * 50
    ranked = [
        candidate("a", [1.0], text=long, score=0.9),
        candidate("b", [1.0], text=long, score=0.8),
        candidate("c", [1.0], text=short, score=0.7),
    ]

    chosen = select(ranked, RetrievalSettings(max_context_chars=400, top_k=3))

    assert [c.chunk_id for c in chosen] == ["a"]


# -- parsing the rewriter's replies ---------------------------------------------------------


def test_phrasings_are_parsed_from_loose_lists() -> None:
    reply = (
        "Here you go:\n"
        "1. How is a starter kept alive?\n"
        '2) "What keeps sourdough going?"\n'
        "- how is a starter kept alive?\n"
        "\n"
        "\u2022 How do you keep a sourdough starter alive?\n"
        "  3 - What does a starter eat?\n"
        "4. One too many?\n"
    )

    phrasings = parse_phrasings(reply, SOURDOUGH, 3)

    assert phrasings == [
        "How is a starter kept alive?",
        "What keeps sourdough going?",
        "What does a starter eat?",
    ]
    assert parse_phrasings("1.\n\n-\n", SOURDOUGH, 3) == []


def test_an_author_is_accepted_only_when_the_reply_is_exactly_a_known_name() -> None:
    authors = ["Ada Lovelace", "Bob"]
    assert parse_author("Ada Lovelace", authors) == "Ada Lovelace"
    assert parse_author(' "ada lovelace". ', authors) == "Ada Lovelace"
    assert parse_author("none", authors) is None
    assert parse_author("Ada", authors) is None
    assert parse_author("It is Bob", authors) is None
    assert parse_author("Bob\nAda Lovelace", authors) is None


def test_the_rewriter_asks_once_and_caps_the_phrasings() -> None:
    generator = ScriptedGenerator("a?\nb?\nc?\nd?")

    assert QueryRewriter(generator).expand("q?", 2) == ["a?", "b?"]
    assert QueryRewriter(generator).expand("q?", 0) == []
    assert QueryRewriter(generator).author_in("q?", []) is None
    assert len(generator.prompts) == 1
