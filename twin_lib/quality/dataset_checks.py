"""The dataset suite: what every instruction or preference example must satisfy.

Same pattern as the document and chunk suites (``checks.py`` + ``frames.py``): measurable
columns per example, then column-map expectations so each failure points at its rows.
Lengths are counted in tokens of the BASE MODEL's tokenizer with its chat template, i.e.
exactly what the trainer will see, not in characters or another model's tokens. Two checks
look at the dataset as a whole (both splits present, a document in one split only), since a
leak or an empty split is a property of the split, not of a row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from twin_lib.datasets.dedup import text_key
from twin_lib.domain.chat import ChatMessage, as_dicts
from twin_lib.domain.datasets import InstructionExample, PreferenceExample, Split
from twin_lib.quality.checks import Check
from twin_lib.quality.frames import ROW
from twin_lib.settings import DatasetSettings

INSTRUCTION_ROLES = "system,user,assistant"
PREFERENCE_ROLES = "system,user|assistant|assistant"

Example = InstructionExample | PreferenceExample
TokenCounter = Callable[[Sequence[ChatMessage]], int]


def chat_token_counter(tokenizer: Any) -> TokenCounter:
    """Tokens of a conversation rendered by the tokenizer's own chat template."""

    def count(messages: Sequence[ChatMessage]) -> int:
        text = tokenizer.apply_chat_template(as_dicts(list(messages)), tokenize=False)
        return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    return count


def _roles(turns: Sequence[ChatMessage]) -> str:
    return ",".join(t.role for t in turns)


def _row(example: Example, count: TokenCounter) -> dict[str, object]:
    if isinstance(example, InstructionExample):
        turns = example.messages
        roles = _roles(turns)
        answer = turns[-1] if turns else ChatMessage(role="assistant", content="")
        example_tokens = count(turns)
        differs = True
    else:
        turns = [*example.prompt, *example.chosen, *example.rejected]
        roles = "|".join(
            _roles(part) for part in (example.prompt, example.chosen, example.rejected)
        )
        answer = example.chosen[-1] if example.chosen else ChatMessage(role="assistant", content="")
        example_tokens = max(
            count([*example.prompt, *example.chosen]), count([*example.prompt, *example.rejected])
        )
        rejected = example.rejected[-1].content if example.rejected else ""
        differs = text_key(rejected) != text_key(answer.content)
    return {
        "example_id": example.example_id,
        "document_id": example.document_id,
        "roles": roles,
        "min_turn_chars": min((len(t.content.strip()) for t in turns), default=0),
        "answer_tokens": count([answer]) if answer.content.strip() else 0,
        "example_tokens": example_tokens,
        "answer_key": text_key(answer.content),
        "rejected_differs": differs,
    }


def examples_frame(rows: Sequence[tuple[Example, Split]], count: TokenCounter) -> pd.DataFrame:
    """One row per example with its split, and in how many splits its document appears."""
    splits_of: dict[str, set[str]] = defaultdict(set)
    for example, split in rows:
        splits_of[example.document_id].add(split)
    records = [
        {
            ROW: position,
            **_row(example, count),
            "split": split,
            "document_splits": len(splits_of[example.document_id]),
        }
        for position, (example, split) in enumerate(rows)
    ]
    return pd.DataFrame.from_records(records, columns=[ROW, *_COLUMNS])


_COLUMNS = (
    "example_id",
    "document_id",
    "roles",
    "min_turn_chars",
    "answer_tokens",
    "example_tokens",
    "answer_key",
    "rejected_differs",
    "split",
    "document_splits",
)


def dataset_checks(
    settings: DatasetSettings, *, kind: str, documents: int
) -> tuple[list[Check], list[Check]]:
    """(row checks, whole-dataset checks); the second kind fails the step, not a row."""
    rows = [
        Check("ExpectColumnValuesToNotBeNull", {"column": "example_id"}),
        Check("ExpectColumnValuesToNotBeNull", {"column": "document_id"}),
        Check("ExpectColumnValuesToBeUnique", {"column": "example_id"}),
        Check("ExpectColumnValuesToBeUnique", {"column": "answer_key"}),
        Check(
            "ExpectColumnValuesToBeInSet",
            {
                "column": "roles",
                "value_set": [INSTRUCTION_ROLES if kind == "instruction" else PREFERENCE_ROLES],
            },
        ),
        Check("ExpectColumnValuesToBeBetween", {"column": "min_turn_chars", "min_value": 1}),
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": "answer_tokens", "min_value": settings.min_answer_tokens},
        ),
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": "example_tokens", "max_value": settings.max_example_tokens},
        ),
        Check("ExpectColumnValuesToBeInSet", {"column": "rejected_differs", "value_set": [True]}),
        Check("ExpectColumnValuesToBeInSet", {"column": "split", "value_set": ["train", "test"]}),
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": "document_splits", "min_value": 1, "max_value": 1},
        ),
    ]
    expected_splits = ["test", "train"] if documents >= 2 else ["train"]
    whole = [
        Check(
            "ExpectColumnDistinctValuesToEqualSet",
            {"column": "split", "value_set": expected_splits},
        )
    ]
    return rows, whole
