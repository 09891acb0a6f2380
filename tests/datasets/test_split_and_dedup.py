from __future__ import annotations

import random

import pytest

from tests.datasets.conftest import chunk
from twin_lib.datasets.dedup import DedupParams, deduplicate, text_key
from twin_lib.datasets.offline import TEMPLATES, derive_instruction, offline_examples
from twin_lib.datasets.split import assign_splits, held_out_count, split_rows

LONG = (
    "The river remembers every stone it has moved, and the valley is its diary. Walk along "
    "the bank at dawn and you can read the pages: gravel bars from the spring flood, a fallen "
    "alder from the autumn storm, the slow curve where the water learned to go around a hill "
    "instead of through it. Nothing in the valley is finished; everything is being written."
)


@pytest.mark.parametrize("seed", range(200))
def test_split_never_leaks_a_document_and_keeps_both_sides(seed: int):
    rng = random.Random(seed)
    documents = [f"doc-{i}" for i in range(rng.randint(0, 30))]
    rows = [chunk("text", document=d, index=i) for d in documents for i in range(rng.randint(1, 5))]
    rng.shuffle(rows)
    fraction = rng.choice([0.0, 0.05, 0.1, 0.3, 0.5, 0.9])
    assignment = assign_splits((r.document_id for r in rows), test_fraction=fraction, seed=seed)
    grouped = split_rows(rows, assignment)

    train_docs = {r.document_id for r in grouped["train"]}
    test_docs = {r.document_id for r in grouped["test"]}
    assert not train_docs & test_docs
    assert len(grouped["train"]) + len(grouped["test"]) == len(rows)
    if len(documents) >= 2:
        assert 1 <= len(test_docs) < len(documents)
        assert train_docs
    else:
        assert not test_docs
    # deterministic for a seed and independent of row order
    rng.shuffle(rows)
    again = assign_splits((r.document_id for r in rows), test_fraction=fraction, seed=seed)
    assert again == assignment


def test_split_depends_on_the_seed_and_honours_the_fraction():
    documents = [f"doc-{i}" for i in range(100)]
    splits = [assign_splits(documents, test_fraction=0.2, seed=s) for s in range(5)]
    assert all(sum(v == "test" for v in s.values()) == 20 for s in splits)
    assert len({tuple(sorted(d for d, v in s.items() if v == "test")) for s in splits}) == 5
    assert held_out_count(1, 0.5) == 0
    assert held_out_count(2, 0.0) == 1
    assert held_out_count(3, 0.99) == 2


def _examples(texts: list[str]):
    chunks = [chunk(t, document=f"d{i}", index=0) for i, t in enumerate(texts)]
    return offline_examples(chunks, author="Ada", system_prompt="Twin of {author}.", seed=1)


def test_exact_and_near_duplicates_are_dropped_keep_first_with_the_kept_id():
    near = LONG.replace("gravel bars", "sand bars")
    distinct = "A completely different note about bread, ovens and the smell of rye at dawn."
    examples = _examples(
        [LONG, distinct, "  " + LONG.upper().replace(",", " ;") + "  ", near, distinct + "!"]
    )
    kept, dropped = deduplicate(examples, DedupParams(threshold=0.8))
    assert [e.example_id for e in kept] == [examples[0].example_id, examples[1].example_id]
    by_id = {d.example_id: d for d in dropped}
    assert by_id[examples[2].example_id].kind == "exact"
    assert by_id[examples[2].example_id].kept_id == examples[0].example_id
    assert by_id[examples[3].example_id].kind == "near"
    assert by_id[examples[3].example_id].kept_id == examples[0].example_id
    assert 0.8 <= by_id[examples[3].example_id].similarity < 1
    assert by_id[examples[4].example_id].kept_id == examples[1].example_id
    # order decides which copy is kept
    kept_reversed, _ = deduplicate(list(reversed(examples)), DedupParams(threshold=0.8))
    assert kept_reversed[0].example_id == examples[4].example_id


def test_different_texts_on_one_topic_are_not_near_duplicates():
    other = (
        "The river forgets nothing it has carried; its valley keeps the record. At sunrise the "
        "shore shows the story: pebbles from the March flood, a birch dropped by October "
        "winds, the bend where the current chose to circle the ridge rather than cut it."
    )
    kept, dropped = deduplicate(_examples([LONG, other]), DedupParams(threshold=0.8))
    assert len(kept) == 2 and not dropped
    assert text_key("Hello,  World!") == text_key("hello world")


def test_offline_instructions_are_seeded_varied_and_derived_from_the_text():
    chunks = [chunk(LONG, document=f"d{i}", index=i % 3, title=f"Walk {i}") for i in range(40)]
    first = [derive_instruction(c, seed=7) for c in chunks]
    assert first == [derive_instruction(c, seed=7) for c in chunks]
    assert first != [derive_instruction(c, seed=8) for c in chunks]
    assert len({i.split()[0] for i in first}) >= 3  # several templates in use
    assert all(("river" in i or "valley" in i or "Walk" in i) for i in first)
    untitled = chunk(LONG, title="")
    assert all(t(untitled, "rivers", ("article", "an article")) is None for t in TEMPLATES[:1])
    assert derive_instruction(untitled, seed=7)
    example = offline_examples([chunks[0]], author="Ada", system_prompt="Twin of {author}.", seed=7)
    assert [m.content for m in example[0].messages] == ["Twin of Ada.", first[0], LONG]
    assert example[0].generator == "offline" and example[0].chunk_ids == [chunks[0].chunk_id]
