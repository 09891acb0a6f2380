"""An optional pairwise LLM judge: twin against base on each question, in both orders.

A judge model prefers whichever answer it reads first (or second) more often than chance,
so each pair is asked twice with the positions swapped, at temperature 0. A verdict counts
only when both orders name the same model; disagreement is a tie (counted as inconsistent),
and so is a reply without a readable verdict (counted as invalid), never a win.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel

from twin_lib.domain.chat import ChatMessage
from twin_lib.evaluation.results import JudgeFigures, Verdicts
from twin_lib.generation.endpoint import ChatEndpoint, EndpointError

logger = logging.getLogger(__name__)

CRITERIA = ("style", "accuracy")
Choice = Literal["A", "B", "tie"]
Winner = Literal["twin", "base", "tie", "invalid"]

JUDGE_PROMPT = (
    "You compare two answers to a question put to a writer's digital twin. The reference is "
    "the writer's own text on the question; the passages are what the twin retrieved.\n"
    "- style: which answer sounds more like the writer of the reference (voice, wording, "
    "rhythm)?\n"
    "- accuracy: which answer is more correct and better supported by the reference and "
    "passages?\n"
    'Reply with JSON only: {"style": "A" | "B" | "tie", "accuracy": "A" | "B" | "tie"}.'
)


class JudgeItem(BaseModel):
    question: str
    reference: str
    passages: list[str]
    twin: str
    base: str


def _user_turn(item: JudgeItem, first: str, second: str) -> str:
    passages = "\n\n".join(f"[{n}] {text}" for n, text in enumerate(item.passages, 1))
    return (
        f"Question:\n{item.question}\n\nReference (the writer's own text):\n{item.reference}\n\n"
        f"Passages:\n{passages or '(none)'}\n\nAnswer A:\n{first}\n\nAnswer B:\n{second}"
    )


CHOICES: dict[str, Choice] = {"A": "A", "B": "B", "TIE": "tie"}


def parse_verdict(text: str) -> dict[str, Choice | None]:
    """Each criterion's choice, None where the reply does not state one."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        raw = None
    found: dict[str, Choice | None] = {}
    for criterion in CRITERIA:
        value = raw.get(criterion) if isinstance(raw, dict) else None
        found[criterion] = CHOICES.get(str(value).strip().upper()) if value is not None else None
    return found


def _preferred(choice: Choice, twin_position: Choice) -> Winner:
    if choice == "tie":
        return "tie"
    return "twin" if choice == twin_position else "base"


def _winner(twin_first: Choice | None, base_first: Choice | None) -> Winner:
    """The model both orders preferred (the twin was A, then B), else a tie or invalid."""
    if twin_first is None or base_first is None:
        return "invalid"
    first, second = _preferred(twin_first, "A"), _preferred(base_first, "B")
    return first if first == second else "tie"


def _inconsistent(twin_first: Choice | None, base_first: Choice | None) -> bool:
    """Both orders gave a verdict and the verdicts name different models (or one a tie)."""
    if twin_first is None or base_first is None:
        return False
    return _preferred(twin_first, "A") != _preferred(base_first, "B")


def _ask(endpoint: ChatEndpoint, item: JudgeItem, first: str, second: str, max_tokens: int) -> str:
    messages = [
        ChatMessage(role="system", content=JUDGE_PROMPT),
        ChatMessage(role="user", content=_user_turn(item, first, second)),
    ]
    try:
        return endpoint.complete(
            messages, json_mode=True, max_tokens=max_tokens, temperature=0.0
        ).text
    except EndpointError as error:
        logger.warning("the judge gave no verdict", extra={"error": str(error)})
        return ""


def judge_pairs(
    endpoint: ChatEndpoint, items: Sequence[JudgeItem], max_tokens: int
) -> JudgeFigures:
    """Both orders of every item, tallied per criterion."""
    outcomes: dict[str, list[tuple[Choice | None, Choice | None]]] = {c: [] for c in CRITERIA}
    for number, item in enumerate(items, 1):
        twin_first = parse_verdict(_ask(endpoint, item, item.twin, item.base, max_tokens))
        base_first = parse_verdict(_ask(endpoint, item, item.base, item.twin, max_tokens))
        for criterion in CRITERIA:
            outcomes[criterion].append((twin_first[criterion], base_first[criterion]))
        logger.info("judged", extra={"done": number, "questions": len(items)})
    return JudgeFigures(
        endpoint=endpoint.label,
        questions=len(items),
        **{criterion: _tally(pairs) for criterion, pairs in outcomes.items()},
    )


def _tally(pairs: Sequence[tuple[Choice | None, Choice | None]]) -> Verdicts:
    winners = [_winner(*pair) for pair in pairs]
    twin, base = winners.count("twin"), winners.count("base")
    ties = len(winners) - twin - base
    return Verdicts(
        twin=twin,
        base=base,
        ties=ties,
        inconsistent=sum(_inconsistent(*pair) for pair in pairs),
        invalid=winners.count("invalid"),
        twin_win_rate=(twin + ties / 2) / len(winners) if winners else 0.0,
    )
