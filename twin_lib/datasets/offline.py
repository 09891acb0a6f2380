"""Generator (b): instructions derived from the author's own text, no model needed.

The author's chunk is the answer; the instruction is made from its title, its topic (the
most frequent content words) or its leading sentence, worded by one of several templates.
The template is picked by a seeded hash of the chunk id, so the same chunks and seed always
give the same dataset, while the dataset as a whole varies its phrasing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

from twin_lib.datasets.examples import instruction_example, system_turn
from twin_lib.domain.datasets import OFFLINE_GENERATOR, InstructionExample, SourceChunk
from twin_lib.hashing import sha256_text

_WORD = re.compile(r"[A-Za-z][A-Za-z-]{2,}")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_MAX_LEAD_CHARS = 160
_STOPWORD_TEXT = """
    about above after again against all also and any are because been before being below
    between both but can could did does doing down during each few for from further had has
    have having her here hers herself him himself his how into its itself just more most
    must myself nor not now off once only other our ours ourselves out over own same she
    should some such than that the their theirs them themselves then there these they this
    those through too under until upon very was were what when where which while who whom
    why will with would you your yours yourself yourselves unto shall thee thou thy hath
    said one two also may might much many like even every let make made actually better
    instead exactly rather still never always really first last best thing things way"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
# (noun, with its article) per category
_MEDIUM = {
    "article": ("article", "an article"),
    "post": ("post", "a post"),
    "repository": ("project documentation", "project documentation"),
}
_DEFAULT_MEDIUM = ("text", "a text")

Template = Callable[[SourceChunk, str, tuple[str, str]], str | None]


def topic(text: str, words: int = 2) -> str:
    """The most frequent content words (longer words first on ties): a crude but
    deterministic topic."""
    counts = Counter(w.lower() for w in _WORD.findall(text) if w.lower() not in _STOPWORDS)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], -len(item[0]), item[0]))
    return " and ".join(word for word, _ in ranked[:words])


def leading_sentence(text: str) -> str:
    first = _SENTENCE_END.split(text.strip(), maxsplit=1)[0].strip()
    if len(first) > _MAX_LEAD_CHARS:
        first = first[:_MAX_LEAD_CHARS].rsplit(" ", 1)[0] + "..."
    return first


def _titled(chunk: SourceChunk, subject: str, medium: tuple[str, str]) -> str | None:
    if not chunk.title.strip() or not subject:
        return None
    return f'Write the part of your {medium[0]} "{chunk.title.strip()}" that covers {subject}.'


def _thoughts(chunk: SourceChunk, subject: str, medium: tuple[str, str]) -> str | None:
    return f"What are your thoughts on {subject}?" if subject else None


def _explain(chunk: SourceChunk, subject: str, medium: tuple[str, str]) -> str | None:
    return f"Explain {subject} the way you would in {medium[1]}." if subject else None


def _opening(chunk: SourceChunk, subject: str, medium: tuple[str, str]) -> str | None:
    lead = leading_sentence(chunk.content)
    return f'Write a passage that opens with: "{lead}"' if lead else None


def _question(chunk: SourceChunk, subject: str, medium: tuple[str, str]) -> str | None:
    if not chunk.title.strip() or not subject:
        return None
    return f'In "{chunk.title.strip()}", what do you say about {subject}?'


TEMPLATES: tuple[Template, ...] = (_titled, _thoughts, _explain, _opening, _question)


def derive_instruction(chunk: SourceChunk, seed: int) -> str:
    """Try templates in a seeded, chunk-specific rotation; the first that applies wins."""
    subject = topic(chunk.content)
    medium = _MEDIUM.get(chunk.category, _DEFAULT_MEDIUM)
    start = int(sha256_text(f"{seed}:{chunk.chunk_id}")[:8], 16) % len(TEMPLATES)
    for offset in range(len(TEMPLATES)):
        instruction = TEMPLATES[(start + offset) % len(TEMPLATES)](chunk, subject, medium)
        if instruction:
            return instruction
    return f"Write something in your own voice, as in your {medium[0]}."


def offline_examples(
    chunks: Sequence[SourceChunk], *, author: str, system_prompt: str, seed: int
) -> list[InstructionExample]:
    """One example per chunk; an empty chunk still yields one, for validation to quarantine."""
    system = system_turn(system_prompt, author)
    return [
        instruction_example(
            chunk, derive_instruction(chunk, seed), system=system, generator=OFFLINE_GENERATOR
        )
        for chunk in chunks
    ]
