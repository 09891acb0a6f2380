"""Preference pairs for DPO: the author's text is chosen over the base model's answer.

The pairs inherit the instruction dataset's prompts, lineage and split, so a document held
out of SFT training stays held out of DPO training too.
"""

from __future__ import annotations

from collections.abc import Sequence

from twin_lib.datasets.examples import example_id
from twin_lib.domain.chat import ChatMessage
from twin_lib.domain.datasets import InstructionExample, PreferenceExample


def prompts(examples: Sequence[InstructionExample]) -> list[list[ChatMessage]]:
    """Every turn but the answer: what the base model is asked."""
    return [list(e.messages[:-1]) for e in examples]


def preference_examples(
    examples: Sequence[InstructionExample], rejected: Sequence[str], *, responder: str
) -> list[PreferenceExample]:
    if len(examples) != len(rejected):
        raise ValueError(
            f"{len(rejected)} base-model answers for {len(examples)} prompts: the responder "
            "must answer every prompt, in order"
        )
    pairs = []
    for example, answer in zip(examples, rejected, strict=True):
        prompt = list(example.messages[:-1])
        chosen = [example.messages[-1]]
        rejected_turn = [ChatMessage(role="assistant", content=answer)]
        pairs.append(
            PreferenceExample(
                example_id=example_id(example.example_id, responder, answer),
                prompt=prompt,
                chosen=chosen,
                rejected=rejected_turn,
                document_id=example.document_id,
                chunk_ids=example.chunk_ids,
                source_url=example.source_url,
                raw_snapshot_id=example.raw_snapshot_id,
                generator=example.generator,
            )
        )
    return pairs
