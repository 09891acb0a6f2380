"""The pairwise judge against a scripted OpenAI-compatible server (no judge model runs
here): verdicts count only when both orders agree."""

from __future__ import annotations

import json
import re

from tests.support.openai_server import Script, scripted_openai_server
from twin_lib.evaluation.judge import JudgeItem, judge_pairs, parse_verdict
from twin_lib.generation.endpoint import ChatEndpoint
from twin_lib.settings import OpenAIEndpointSettings

ANSWERS = re.compile(r"Answer A:\n(.*)\n\nAnswer B:\n(.*)\Z", re.DOTALL)


def prefers(word: str):
    """A fair judge: the answer that mentions ``word`` wins style and accuracy, wherever it is;
    a question mentioning "garbled" gets a reply that is not JSON."""

    def reply(request: dict) -> str:
        user = request["messages"][-1]["content"]
        if "garbled" in user:
            return "Answer A is better, clearly."
        first, second = ANSWERS.search(user).groups()
        choice = "A" if word in first else "B" if word in second else "tie"
        return json.dumps({"style": choice, "accuracy": choice})

    return reply


def item(question: str, twin: str, base: str) -> JudgeItem:
    return JudgeItem(
        question=question, reference="I feed my starter daily.", passages=[], twin=twin, base=base
    )


def test_a_fair_judge_names_the_better_answer_in_both_orders() -> None:
    script = Script(retry_after_s=0, reply=prefers("starter"))  # a 429 and a 500 come first
    items = [
        item("How do you keep a starter?", "I feed the starter daily.", "Bread is nice."),
        item("And on holiday?", "Nothing.", "Put the starter in the fridge."),
        item("What about rye?", "Rye works.", "Wheat works."),
        item("A garbled one?", "x", "y"),
    ]
    with scripted_openai_server(script) as (base_url, _):
        endpoint = ChatEndpoint(OpenAIEndpointSettings(base_url=base_url, max_backoff_s=0.2))
        figures = judge_pairs(endpoint, items, max_tokens=32)
    assert script.statuses[:2] == [429, 500] and len(script.requests) == 2 + 2 * len(items)
    bodies = script.requests[2:]
    assert all(b["temperature"] == 0.0 and b["max_tokens"] == 32 for b in bodies)
    assert "Answer A:\nI feed the starter daily." in bodies[0]["messages"][-1]["content"]
    assert "Answer A:\nBread is nice." in bodies[1]["messages"][-1]["content"]
    for verdicts in (figures.style, figures.accuracy):
        assert (verdicts.twin, verdicts.base, verdicts.ties) == (1, 1, 2)
        assert (verdicts.inconsistent, verdicts.invalid) == (0, 1)
        assert verdicts.twin_win_rate == (1 + 2 / 2) / 4


def test_verdicts_are_read_strictly() -> None:
    assert parse_verdict('{"style": "a", "accuracy": "Tie"}') == {"style": "A", "accuracy": "tie"}
    assert parse_verdict('{"style": "C"}') == {"style": None, "accuracy": None}
    assert parse_verdict("A") == {"style": None, "accuracy": None}
