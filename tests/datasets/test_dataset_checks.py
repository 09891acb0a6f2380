"""The dataset suite quarantines each kind of bad example with the expectation it broke."""

from __future__ import annotations

from tests.datasets.conftest import chunk
from twin_lib.datasets.offline import offline_examples
from twin_lib.datasets.preference import preference_examples
from twin_lib.domain.chat import ChatMessage
from twin_lib.quality.dataset_checks import chat_token_counter, dataset_checks, examples_frame
from twin_lib.quality.gate import split_by_validation
from twin_lib.quality.validation import validate_frame
from twin_lib.settings import DatasetSettings

TEXT = "Rivers carve valleys slowly, and patience is the lesson they teach every walker here."


def _examples(count: int):
    chunks = [
        chunk(f"{TEXT} Note number {i} is about stone {i * 7}.", document=f"d{i}")
        for i in range(count)
    ]
    return offline_examples(chunks, author="Ada", system_prompt="Twin of {author}.", seed=3)


def _validate(rows, tokenizer, settings: DatasetSettings, kind: str = "instruction"):
    documents = len({e.document_id for e, _ in rows})
    row_checks, whole = dataset_checks(settings, kind=kind, documents=documents)
    frame = examples_frame(rows, chat_token_counter(tokenizer))
    return validate_frame(frame, [*row_checks, *whole], f"{kind}_examples"), whole


def test_bad_instruction_rows_are_quarantined_with_reasons(tokenizer):
    settings = DatasetSettings(min_answer_tokens=4, max_example_tokens=200)
    good = _examples(6)
    empty = good[1].model_copy(
        update={"messages": [*good[1].messages[:2], ChatMessage(role="assistant", content=" ")]}
    )
    swapped = good[2].model_copy(update={"messages": list(reversed(good[2].messages))})
    too_long = good[3].model_copy(
        update={
            "messages": [
                *good[3].messages[:2],
                ChatMessage(role="assistant", content=" ".join([TEXT] * 30)),
            ]
        }
    )
    duplicate = good[4].model_copy(update={"example_id": "dup", "document_id": "d9"})
    rows = [
        (good[0], "train"),
        (empty, "train"),
        (swapped, "train"),
        (too_long, "train"),
        (good[4], "train"),
        (duplicate, "train"),
        (good[5], "test"),
        (good[5].model_copy(update={"example_id": "leak"}), "train"),  # d5 on both sides
    ]
    result, whole = _validate(rows, tokenizer, settings)
    reasons = {position: " | ".join(r) for position, r in result.reasons.items()}
    assert set(reasons) == {1, 2, 3, 4, 5, 6, 7}
    assert "min_turn_chars" in reasons[1] and "answer_tokens" in reasons[1]
    assert "roles" in reasons[2]
    assert "example_tokens" in reasons[3]
    assert "answer_key" in reasons[4] and "answer_key" in reasons[5]  # both copies
    assert "document_splits" in reasons[6] and "document_splits" in reasons[7]
    passed, quarantined = split_by_validation([e for e, _ in rows], result)
    assert passed == [good[0]]
    assert all(q.reasons for q in quarantined)
    assert all(c.success for c in result.checks if c.check in {w.describe() for w in whole})


def test_a_missing_split_fails_the_whole_dataset_check(tokenizer):
    rows = [(e, "train") for e in _examples(3)]
    result, whole = _validate(rows, tokenizer, DatasetSettings())
    assert result.failed_rows == 0
    failed = [c for c in result.checks if not c.success]
    assert [c.check for c in failed] == [w.describe() for w in whole]


def test_preference_rows_need_a_rejected_answer_that_differs(tokenizer):
    examples = _examples(3)
    pairs = preference_examples(
        examples, ["A different answer of the base model.", examples[1].answer, ""], responder="r"
    )
    rows = [(pairs[0], "train"), (pairs[1], "train"), (pairs[2], "test")]
    result, _ = _validate(rows, tokenizer, DatasetSettings(), kind="preference")
    assert set(result.reasons) == {1, 2}
    assert "rejected_differs" in " ".join(result.reasons[1])
    assert "min_turn_chars" in " ".join(result.reasons[2])
