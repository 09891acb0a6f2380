"""The evaluation's measures on texts whose answer is known."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest

from tests.support.serving_data import ESSAYS
from twin_lib.evaluation.answers import answer_stats
from twin_lib.evaluation.grounding import grounding, sentences
from twin_lib.evaluation.perplexity import held_out_perplexity
from twin_lib.evaluation.ranking import ranking_figures
from twin_lib.evaluation.style import calibrated_style, style_position, style_scores
from twin_lib.evaluation.vectors import Embedder
from twin_lib.settings import EvaluationSettings

AUTHOR = list(ESSAYS.values())
PROFILE, HELD_OUT = AUTHOR[:6], AUTHOR[6:]
UNRELATED = [
    "Section 4.2: the lessee shall remit payment within thirty days of invoice receipt.",
    "The quarterly revenue report indicates a 3.4% increase in operating margin year over year.",
    "Pursuant to clause 7, either party may terminate this agreement with written notice.",
    "Install the package, then configure the environment variables listed in the appendix.",
]
MORE_UNRELATED = [
    "Invoices not settled within sixty days incur a late fee of two percent per month.",
    "Operating expenses decreased slightly while gross margin remained stable in Q3.",
    "The contractor shall indemnify the client against all claims arising from the works.",
]


def test_identical_text_scores_at_the_ceiling_and_unrelated_text_near_the_floor(
    embed: Embedder,
) -> None:
    scores = style_scores(
        PROFILE,
        {"ceiling": HELD_OUT, "floor": UNRELATED, "twin": HELD_OUT, "unrelated": MORE_UNRELATED},
        embed=embed,
    )
    ceiling, floor = scores["ceiling"], scores["floor"]
    assert ceiling.tfidf > floor.tfidf + 0.1 and ceiling.embedding > floor.embedding + 0.1
    at_ceiling = style_position(scores["twin"], ceiling, floor)
    assert at_ceiling.tfidf == pytest.approx(1.0) and at_ceiling.embedding == pytest.approx(1.0)
    near_floor = style_position(scores["unrelated"], ceiling, floor)
    assert near_floor.tfidf is not None and near_floor.embedding is not None
    assert abs(near_floor.tfidf) < 0.3 and abs(near_floor.embedding) < 0.3


def test_empty_answers_have_no_style(embed: Embedder) -> None:
    scores = style_scores(PROFILE, {"empty": ["", "  \n"], "author": HELD_OUT}, embed=embed)
    assert scores["empty"].tfidf == 0.0 and scores["empty"].embedding == 0.0
    assert scores["author"].embedding > 0.2


def test_without_another_author_the_base_answers_are_the_floor(embed: Embedder) -> None:
    twin_answers = [ESSAYS["knitting"][:200], ESSAYS["kites"][:200]]
    twin, base, calibration = calibrated_style(
        PROFILE,
        twin=twin_answers,
        base=UNRELATED[:2],
        author_answers=HELD_OUT,
        other_authors=[],
        embed=embed,
    )
    assert calibration.floor_source == "base_answers" and calibration.floor == base
    assert (calibration.profile_texts, calibration.ceiling_texts) == (6, 5)
    assert style_position(base, calibration.ceiling, calibration.floor).tfidf == 0.0
    position = style_position(twin, calibration.ceiling, calibration.floor)
    assert position.tfidf is not None and position.tfidf > 0.5
    _, _, with_other = calibrated_style(
        PROFILE,
        twin=twin_answers,
        base=UNRELATED[:2],
        author_answers=HELD_OUT,
        other_authors=MORE_UNRELATED,
        embed=embed,
    )
    assert with_other.floor_source == "other_author" and with_other.floor_texts == 3


def test_a_calibration_that_cannot_separate_ceiling_and_floor_gives_no_position(
    embed: Embedder,
) -> None:
    scores = style_scores(PROFILE, {"same": HELD_OUT}, embed=embed)
    position = style_position(scores["same"], scores["same"], scores["same"])
    assert position.tfidf is None and position.embedding is None
    with pytest.raises(ValueError, match="no texts to score for empty"):
        style_scores(PROFILE, {"empty": []}, embed=embed)


def test_an_answer_copied_from_a_passage_is_grounded_and_unrelated_text_is_not(
    embed: Embedder,
) -> None:
    settings = EvaluationSettings()
    passages = [ESSAYS["sourdough"], ESSAYS["herons"]]
    copied = " ".join(sentences(ESSAYS["sourdough"])[1:3])
    rule = {
        "embed": embed,
        "cosine": settings.grounding_cosine,
        "overlap": settings.grounding_overlap,
    }
    full = grounding([(copied, passages)], **rule)
    assert full.rate == 1.0 and full.sentences == 2
    none = grounding([(" ".join(UNRELATED), passages)], **rule)
    assert none.rate is not None and none.rate <= 0.1
    mixed = grounding([(copied, passages), (UNRELATED[0], passages), ("", passages)], **rule)
    assert (mixed.answers, mixed.sentences, mixed.supported) == (2, 3, 2)
    assert grounding([("", passages)], **rule).rate is None


def test_hit_at_k_and_mrr_of_known_rankings() -> None:
    figures = ranking_figures(
        [["a", "b"], ["x", "a"], ["x", "y"], ["y", "x", "z", "b"]],
        [{"a"}, {"a"}, {"a"}, {"b", "z"}],
        k=3,
    )
    assert (figures.hit_at_1, figures.hit_at_k) == (0.25, 0.75)
    assert figures.mrr == pytest.approx((1 + 1 / 2 + 0 + 1 / 3) / 4)
    with pytest.raises(ValueError, match="no question"):
        ranking_figures([], [], k=3)


def test_length_and_refusals() -> None:
    settings = EvaluationSettings()
    stats = answer_stats(
        ["I feed it every morning.", "", "I can't help with that.", "As an AI, I have no jar."],
        [6, 0, 7, 9],
        settings.refusal_patterns,
    )
    assert (stats.answers, stats.empty, stats.refusals) == (4, 1, 3)
    assert stats.refusal_rate == 0.75
    assert stats.words_mean == pytest.approx((5 + 0 + 5 + 7) / 4)
    assert stats.tokens_p50 == 6.5


def overfit(base_model: Path, texts: list[str], out: Path, steps: int = 20) -> Path:
    """A copy of the tiny base model trained on ``texts`` until it knows them."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batches = [torch.tensor([tokenizer(text)["input_ids"]]) for text in texts]
    model.train()
    for step in range(steps):
        ids = batches[step % len(batches)]
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_perplexity_is_lower_on_text_the_model_was_trained_on(
    serving_base_model: Path, tmp_path: Path
) -> None:
    seen, unseen = [ESSAYS["sourdough"], ESSAYS["herons"]], [ESSAYS["bees"], ESSAYS["chess"]]
    rng = random.Random(0)
    noise = [
        " ".join(
            "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(60)
        )
    ]
    trained = overfit(serving_base_model, seen, tmp_path / "overfit")
    kwargs = {"batch_size": 2, "max_tokens": 256}
    on_seen = held_out_perplexity(trained, seen, **kwargs)
    on_unseen = held_out_perplexity(trained, unseen, **kwargs)
    on_noise = held_out_perplexity(trained, noise, **kwargs)
    assert on_seen.perplexity * 2 < on_unseen.perplexity < on_noise.perplexity
    assert on_seen.tokens > 100 and on_seen.texts == 2
    one_by_one = held_out_perplexity(trained, seen, **kwargs | {"batch_size": 1})
    assert one_by_one.mean_nll == pytest.approx(on_seen.mean_nll, rel=1e-4)
    with pytest.raises(ValueError, match="test split is empty"):
        held_out_perplexity(trained, ["", "  "], **kwargs)
    long = held_out_perplexity(trained, [" ".join(seen * 20)], batch_size=1, max_tokens=10_000)
    assert long.tokens == 256 - 1  # the tiny model's window, less the first token
