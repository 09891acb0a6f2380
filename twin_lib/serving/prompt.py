"""The messages the twin's model sees for one request, built from the retrieved passages.

Training examples were ``system`` (the twin's system prompt), ``user`` (an instruction),
``assistant`` (the author's own text). The served prompt keeps that shape: the system turn
starts with exactly the trained system prompt, the retrieved passages follow it in the same
turn, and the conversation's user turns stay what they are, so the last user turn reads like
the instructions the model learned to answer. A client's own system turns are not passed on:
the twin speaks with the system prompt it was trained with, not as whoever a client names.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from twin_lib.domain.chat import ChatMessage
from twin_lib.serving.contracts import RetrievedChunk

CONTEXT_HEADING = "Passages from your own writing that may help you answer:"
CUT_MARK = " …"
MIN_CUT_CHARS = 200  # less room than this left: a cut passage would say too little


class Passage(BaseModel):
    """A retrieved chunk as placed in the prompt (its text possibly cut to the budget)."""

    chunk: RetrievedChunk
    text: str


class Prompt(BaseModel):
    """What the generator gets, and which chunks it actually saw (the answer's sources)."""

    messages: list[ChatMessage]
    passages: list[Passage]

    @property
    def chunks(self) -> list[RetrievedChunk]:
        return [p.chunk for p in self.passages]


def question_of(conversation: Sequence[ChatMessage]) -> str:
    """The question is the last user turn, and the conversation must end with it."""
    turns = [m for m in conversation if m.role != "system"]
    if not turns:
        raise ValueError("the conversation has no user turn: send at least one user message")
    if turns[-1].role != "user":
        raise ValueError(
            "the conversation must end with a user turn (the question); its last message is "
            f"from the {turns[-1].role}"
        )
    question = turns[-1].content
    if not question.strip():
        raise ValueError("the question (the last user turn) is empty")
    return question


def cut_text(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, the mark included, ending on a whole word."""
    head = text[: limit - len(CUT_MARK)]
    words = head.rsplit(maxsplit=1)
    whole = words[0] if len(words) > 1 and not text[len(head)].isspace() else head
    return whole.rstrip() + CUT_MARK


def fit_passages(chunks: Sequence[RetrievedChunk], max_chars: int) -> list[Passage]:
    """Chunks in rank order until their text fills ``max_chars``; the one that overflows is
    cut at a word boundary when enough of it fits, and nothing after it is placed."""
    passages: list[Passage] = []
    left = max_chars
    for chunk in chunks:
        text = chunk.content.strip()
        if not text:
            continue
        if len(text) > left:
            if left >= MIN_CUT_CHARS:
                passages.append(Passage(chunk=chunk, text=cut_text(text, left)))
            break
        passages.append(Passage(chunk=chunk, text=text))
        left -= len(text)
    return passages


def context_block(passages: Sequence[Passage]) -> str:
    """Numbered passages, each under its title when it has one."""
    entries = [
        f"[{number}] {p.chunk.title.strip()}\n{p.text}"
        if p.chunk.title.strip()
        else f"[{number}]\n{p.text}"
        for number, p in enumerate(passages, start=1)
    ]
    return "\n\n".join([CONTEXT_HEADING, *entries])


def build_prompt(
    system_prompt: str,
    chunks: Sequence[RetrievedChunk],
    conversation: Sequence[ChatMessage],
    *,
    max_context_chars: int,
) -> Prompt:
    """System prompt plus passages, then the conversation without its system turns.

    Without passages the system turn is the trained system prompt alone. The same inputs
    always give the same messages.
    """
    question_of(conversation)
    passages = fit_passages(chunks, max_context_chars)
    system = system_prompt.strip()
    if passages:
        system = f"{system}\n\n{context_block(passages)}"
    turns = [m for m in conversation if m.role != "system"]
    return Prompt(messages=[ChatMessage(role="system", content=system), *turns], passages=passages)
