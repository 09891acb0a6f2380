"""A whole evaluation of a registered version on the real stack: answers from the twin,
figures, the stored report and registry summary, and the judge against a scripted server."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.openai_server import Script, scripted_openai_server
from tests.support.serving_data import ServedSetup
from twin_lib.evaluation.results import EvaluationResult
from twin_lib.registry.store import ModelRegistry
from twin_lib.settings import TwinSettings
from twin_lib.steps.evaluation import evaluate_version, read_evaluation
from twin_lib.storage import ObjectStore


def always_a(_: dict) -> str:
    """A judge with total position bias: whatever comes first wins."""
    return json.dumps({"style": "A", "accuracy": "A"})


@pytest.fixture(scope="module")
def evaluated(served_setup: ServedSetup, tmp_path_factory: pytest.TempPathFactory):
    """One evaluation with few questions and short answers, the judge on (scripted)."""
    script = Script(faults={}, reply=always_a)
    with scripted_openai_server(script) as (base_url, _):
        settings = served_setup.settings
        evaluation = settings.evaluation.model_copy(
            update={
                "max_questions": 3,
                "max_new_tokens": 16,
                "samples": 2,
                "judge": settings.evaluation.judge.model_copy(
                    update={
                        "enabled": True,
                        "endpoint": settings.evaluation.judge.endpoint.model_copy(
                            update={"base_url": base_url, "max_backoff_s": 1.0}
                        ),
                    }
                ),
            }
        )
        report = tmp_path_factory.mktemp("report") / "evaluation.html"
        result = evaluate_version(
            settings.model_copy(update={"evaluation": evaluation}),
            served_setup.model.version,
            report_path=report,
        )
    return result, report, script


def test_the_same_weights_measure_the_same_as_the_base(evaluated) -> None:
    """The fixture's candidate is its base model's weights: every figure must agree, since
    both run through the same retriever, prompts and greedy decoding."""
    result, _, _ = evaluated
    twin, base = result.candidate, result.base
    assert 1 <= result.questions <= 3 and twin.answers.answers == result.questions
    assert twin.perplexity == base.perplexity and twin.perplexity.tokens > 0
    assert twin.style == base.style and twin.answers == base.answers
    assert twin.grounding == base.grounding
    assert [s.twin_answer for s in result.samples] == [s.base_answer for s in result.samples]
    assert len(result.samples) == min(2, result.questions)
    assert all(s.sources for s in result.samples)


def test_calibration_uses_the_other_author_as_floor(evaluated) -> None:
    """The fixture's other author writes on the author's topics in the question's words, so
    the floor need not lie below the ceiling here; positions follow from the three scores."""
    result, _, _ = evaluated
    calibration = result.calibration
    assert calibration.floor_source == "other_author" and calibration.floor_texts == 3
    assert calibration.ceiling_texts == result.questions and calibration.profile_texts >= 8
    for measure in ("tfidf", "embedding"):
        ceiling, floor = getattr(calibration.ceiling, measure), getattr(calibration.floor, measure)
        score = getattr(result.candidate.style, measure)
        position = getattr(result.candidate.style_position, measure)
        if ceiling > floor:
            assert position == pytest.approx((score - floor) / (ceiling - floor))
        else:
            assert position is None


def test_hit_at_k_and_mrr_on_the_labelled_corpus(served_setup: ServedSetup) -> None:
    """The twin's retriever on the hand-labelled questions (relevance: the essay's URL), and
    on the same questions with their answers' essays swapped, which no retrieval can hit."""
    from twin_lib.evaluation.ranking import ranking_figures
    from twin_lib.serving.retrieval import WeaviateRetriever

    settings, model = served_setup.settings, served_setup.model
    retriever = WeaviateRetriever(
        settings.weaviate,
        settings.features.embedding,
        settings.serving.retrieval.model_copy(update={"top_k": 1}),
        collection=model.collection,
        author=model.author,
    )
    try:
        rankings = [
            [c.source_url for c in retriever.retrieve(question)]
            for question, _ in served_setup.questions
        ]
    finally:
        retriever.close()
    expected = [{url} for _, url in served_setup.questions]
    labelled = ranking_figures(rankings, expected, k=1)
    assert (labelled.questions, labelled.hit_at_1, labelled.mrr) == (10, 1.0, 1.0)
    swapped = ranking_figures(rankings, expected[1:] + expected[:1], k=1)
    assert (swapped.hit_at_k, swapped.mrr) == (0.0, 0.0)


def test_retrieval_finds_the_source_chunks_of_the_dataset_questions(
    evaluated, served_setup: ServedSetup
) -> None:
    result, _, _ = evaluated
    retrieval = result.retrieval
    assert retrieval.k == served_setup.settings.serving.retrieval.top_k
    assert retrieval.questions >= 10
    assert retrieval.hit_at_1 <= retrieval.hit_at_k and retrieval.mrr <= retrieval.hit_at_k
    assert retrieval.hit_at_k >= 0.9 and retrieval.mrr >= 0.9  # the titles name the topics


def test_a_judge_that_always_prefers_the_first_answer_decides_nothing(evaluated) -> None:
    result, _, script = evaluated
    judge = result.judge
    assert judge is not None and judge.questions == result.questions
    assert len(script.requests) == 2 * result.questions  # both orders of each question
    assert all(r["temperature"] == 0.0 for r in script.requests)
    for verdicts in (judge.style, judge.accuracy):
        assert (verdicts.twin, verdicts.base, verdicts.ties) == (0, 0, result.questions)
        assert verdicts.inconsistent == result.questions and verdicts.twin_win_rate == 0.5


def test_results_are_stored_with_the_version_and_read_back(
    evaluated, served_setup: ServedSetup
) -> None:
    result, _, _ = evaluated
    settings: TwinSettings = served_setup.settings
    assert read_evaluation(settings, result.model, result.version) == result
    stored = ModelRegistry(settings.minio, settings.registry).get(result.model, result.version)
    assert stored.evaluation["json_uri"] == result.json_uri
    assert stored.evaluation["metrics"] == result.metrics()
    assert stored.evaluation["metrics"]["twin_perplexity"] > 1
    metrics = result.metrics()
    assert metrics["retrieval_hit_at_k"] == result.retrieval.hit_at_k
    if result.candidate.grounding.rate is None:  # unset figures are left out, not zero
        assert "twin_grounding" not in metrics
    assert stored.status == served_setup.model.status  # evaluating changes no status


def test_the_report_is_self_contained_and_shows_the_figures(
    evaluated, served_setup: ServedSetup
) -> None:
    result, report, _ = evaluated
    settings = served_setup.settings
    bucket, key = result.report_uri.removeprefix("s3://").split("/", 1)
    page = ObjectStore(settings.minio).get_bytes(bucket, key).decode()
    assert page == report.read_text(encoding="utf-8")
    links = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)""", page)
    assert len(links) == 2 and all(link.startswith("data:image/png;base64,") for link in links)
    assert not re.search(r"<(script|link|iframe)\b|@import|url\(", page)
    assert f"{result.candidate.perplexity.perplexity:.2f}" in page
    assert "ceiling" in page and "floor" in page and "hit@" in page
    assert result.samples[0].question in page or "&#x27;" in page


def test_a_version_without_held_out_data_is_refused(served_setup: ServedSetup) -> None:
    from tests.support.serving_data import register_model

    settings = served_setup.settings
    bare = register_model(settings, "twin-undatasetted", served_setup.base_model, {})
    with pytest.raises(ValueError, match=r"no instruction dataset"):
        evaluate_version(settings, bare.version, name="twin-undatasetted")


def test_result_round_trips_as_json(evaluated) -> None:
    result, _, _ = evaluated
    assert EvaluationResult.model_validate_json(result.model_dump_json()) == result


def test_a_reposted_copy_of_the_source_chunk_counts_as_a_hit(served_setup: ServedSetup) -> None:
    """The retriever keeps one of two identical chunks (either may be the one the dataset
    example was made from): relevance is by content hash, so both copies are hits."""
    from twin_lib.evaluation.ranking import ranking_figures
    from twin_lib.steps.datasets import read_author_chunks
    from twin_lib.steps.evaluation import read_collection_texts

    settings, model = served_setup.settings, served_setup.model
    weaviate = settings.weaviate.model_copy(update={"collection": model.collection})
    copies = [
        c
        for c in read_author_chunks(weaviate, model.author)
        if c.source_url in served_setup.reposted_urls
    ]
    assert len(copies) == 2 and copies[0].chunk_id != copies[1].chunk_id
    found = read_collection_texts(settings, model.collection, model.author)
    hashes = found.content_hashes
    assert hashes[copies[0].chunk_id] == hashes[copies[1].chunk_id] == copies[0].content_hash
    served_copy, example_copy = copies
    figures = ranking_figures(
        [[hashes[served_copy.chunk_id]]], [{hashes[example_copy.chunk_id]}], k=4
    )
    assert figures.hit_at_1 == 1.0
    authors_own = {c.content for c in read_author_chunks(weaviate, model.author)}
    assert len(found.other_authors) == 3 and not authors_own & set(found.other_authors)
