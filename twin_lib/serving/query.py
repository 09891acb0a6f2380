"""Query rewriting with the twin's own generator: extra phrasings and the author asked about.

Expansion asks for other phrasings of the question, one per line, so retrieval also finds
passages that use other words than the user did. Self-query asks which known author the
question is about. Language models answer loosely (numbered lists, quotes, a chatty
preamble, the same line twice), so replies are parsed defensively: a phrasing is a
non-empty line with its list marker and quotes removed, duplicates, the question itself
and preambles ("Here you go:") dropped, at most the number asked for; an author is
accepted only when the whole reply is exactly one of the known names, since a wrong
author filter silently retrieves another person's text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from twin_lib.domain.chat import ChatMessage
from twin_lib.serving.contracts import GenerationParams, Generator

EXPANSION_SYSTEM = (
    "You rewrite search questions. Reply with the rewritten questions only, one per line, "
    "without numbering, quotes or any other text."
)
SELF_QUERY_SYSTEM = (
    "You classify questions. Reply with exactly one name from the list, or with the word "
    "none, and nothing else."
)
NO_AUTHOR = "none"

_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022\u2013]+|\(?\d{1,2}[.):\]]|\d{1,2}\s+-)\s*")
_QUOTES = "\"'`\u201c\u201d\u2018\u2019\u00ab\u00bb"
_TRAILING = ".!;:,"


def _clean_line(line: str) -> str:
    return " ".join(_LIST_MARKER.sub("", line).strip().strip(_QUOTES).split())


def parse_phrasings(reply: str, question: str, n: int) -> list[str]:
    """At most ``n`` distinct phrasings from a reply, none of them the question itself."""
    seen = {question.strip().casefold()}
    phrasings: list[str] = []
    for line in reply.splitlines():
        phrasing = _clean_line(line)
        key = phrasing.casefold()
        if not phrasing or key in seen or phrasing.endswith(":"):  # ":" ends a preamble
            continue
        seen.add(key)
        phrasings.append(phrasing)
        if len(phrasings) == n:
            break
    return phrasings


def parse_author(reply: str, authors: Sequence[str]) -> str | None:
    """The known author the whole reply names (case aside), or None."""
    answer = " ".join(reply.strip().strip(_QUOTES).rstrip(_TRAILING).strip(_QUOTES).split())
    by_key = {a.casefold(): a for a in authors}
    return by_key.get(answer.casefold())


class QueryRewriter:
    """Expansion and self-query over any :class:`Generator` (greedy, short replies)."""

    def __init__(self, generator: Generator, *, max_tokens: int = 128) -> None:
        self.generator = generator
        self.params = GenerationParams(max_tokens=max_tokens, temperature=0.0)

    def _ask(self, system: str, user: str) -> str:
        messages = [
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=user),
        ]
        return self.generator.generate(messages, self.params).text

    def expand(self, question: str, n: int) -> list[str]:
        """Up to ``n`` other phrasings of ``question`` (fewer when the reply has fewer)."""
        if n < 1:
            return []
        reply = self._ask(
            EXPANSION_SYSTEM,
            f"Write {n} different phrasings of this question:\n{question}",
        )
        return parse_phrasings(reply, question, n)

    def author_in(self, question: str, authors: Sequence[str]) -> str | None:
        """Which of ``authors`` the question is about; None when none (or no clear answer)."""
        if not authors:
            return None
        names = "\n".join(f"- {a}" for a in authors)
        reply = self._ask(
            SELF_QUERY_SYSTEM,
            f"Authors:\n{names}\n\nWhich author is this question about? Reply {NO_AUTHOR} "
            f"if it names none of them.\nQuestion: {question}",
        )
        return parse_author(reply, authors)
