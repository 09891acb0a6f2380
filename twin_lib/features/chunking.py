"""Token-aware chunking with the embedding model's own tokenizer.

all-MiniLM-L6-v2 silently truncates inputs past 256 word pieces, so a chunk sized in
characters loses text without any error. Chunks here are measured in the model's tokens
and never exceed its window: the configured size is capped at the window, windows end on
word boundaries (on sentence boundaries for sentence-packed categories), and consecutive
windows overlap by the configured number of tokens.

Tokens alone do not bound a chunk: a word-piece tokenizer turns a run of characters with
no spaces (a minified file, a base64 blob) into ONE unknown token, however long. So every
chunk is also capped in characters, and a token spanning more than the cap is cut into
pieces that each count as a token; chunk validation then rejects chunks whose characters
per token show they are mostly unknown tokens.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Sequence
from typing import Protocol

from twin_lib.domain import Chunk, CleanedDocument, content_hash
from twin_lib.settings import ChunkSpec

_SENTENCE_END = re.compile(r"(?<=[.!?;:])[\"')\]]*\s+|\n\s*\n")


class Tokenizer(Protocol):
    """The slice of a Hugging Face fast tokenizer that chunking relies on."""

    def __call__(self, text: str, **kwargs: object) -> object: ...


def _encode(tokenizer: Tokenizer, text: str) -> tuple[list[tuple[int, int]], list[int | None]]:
    """Whole documents are tokenized on purpose, to be cut into windows: no length warning."""
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    return list(encoding["offset_mapping"]), list(encoding.word_ids())


def split_long_tokens(
    offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None], max_chars: int
) -> tuple[list[tuple[int, int]], list[int | None]]:
    """Cut every token spanning more than ``max_chars`` characters into pieces of at most that.

    Each piece becomes a word of its own, so windows may end between pieces.
    """
    new_offsets: list[tuple[int, int]] = []
    new_words: list[int | None] = []
    next_word = max((w for w in word_ids if w is not None), default=-1) + 1
    for (start, end), word in zip(offsets, word_ids, strict=True):
        if end - start <= max_chars:
            new_offsets.append((start, end))
            new_words.append(word)
            continue
        for piece in range(start, end, max_chars):
            new_offsets.append((piece, min(piece + max_chars, end)))
            new_words.append(next_word)
            next_word += 1
    return new_offsets, new_words


def special_token_count(tokenizer: Tokenizer) -> int:
    """Tokens the model adds around every input ([CLS] and [SEP] for BERT-style models)."""
    return len(tokenizer("", add_special_tokens=True)["input_ids"])


def sentence_starts(text: str) -> list[int]:
    """Character offsets where sentences or paragraphs begin."""
    return [0, *(match.end() for match in _SENTENCE_END.finditer(text))]


def token_windows(
    offsets: Sequence[tuple[int, int]],
    word_ids: Sequence[int | None],
    *,
    limit: int,
    overlap: int,
    preferred_starts: Sequence[int] = (),
    max_chars: int | None = None,
) -> list[tuple[int, int]]:
    """Half-open token ranges of at most ``limit`` tokens that do not split words.

    A window ends at the last preferred start (a sentence start) that fits, else at the
    last word start that fits; a single word longer than the limit is cut hard. With
    ``max_chars``, a window also spans at most that many characters (no token may be longer:
    see ``split_long_tokens``).
    """
    total = len(offsets)
    word_starts = [i for i in range(total) if i == 0 or word_ids[i] != word_ids[i - 1]]
    char_starts = [offset[0] for offset in offsets]
    char_ends = [offset[1] for offset in offsets]
    preferred = sorted({bisect.bisect_left(char_starts, c) for c in preferred_starts})
    windows: list[tuple[int, int]] = []
    start = 0
    while start < total:
        end = min(start + limit, total)
        if max_chars is not None:
            fitting = bisect.bisect_right(char_ends, char_starts[start] + max_chars)
            end = max(min(end, fitting), start + 1)
        if end < total:
            end = _last_break(preferred, start, end) or _last_break(word_starts, start, end) or end
        windows.append((start, end))
        if end >= total:
            break
        next_word = bisect.bisect_left(word_starts, max(end - overlap, start + 1))
        start = word_starts[next_word] if next_word < len(word_starts) else end
        start = min(start, end)
    return windows


def _last_break(breaks: Sequence[int], start: int, end: int) -> int | None:
    """The last break point in (start, end], if any."""
    position = bisect.bisect_right(breaks, end) - 1
    return breaks[position] if position >= 0 and breaks[position] > start else None


def chunk_document(
    document: CleanedDocument,
    spec: ChunkSpec,
    tokenizer: Tokenizer,
    model_window: int,
    *,
    max_chars: int,
    feature_version: str = "",
) -> list[Chunk]:
    """Cut a cleaned document into chunks that fit ``model_window`` tokens and ``max_chars``.

    Chunk ids include the feature version, so chunks made under another model, chunking or
    cleaning never share an id with the ones that replace them.
    """
    text = document.text
    if not text.strip():
        return []
    limit = min(spec.max_tokens, model_window)
    overlap = min(spec.overlap_tokens, limit // 2)
    offsets, word_ids = split_long_tokens(*_encode(tokenizer, text), max_chars)
    preferred = sentence_starts(text) if spec.sentence_packed else ()
    provenance = document.model_dump(exclude={"text"})
    windows = token_windows(
        offsets,
        word_ids,
        limit=limit,
        overlap=overlap,
        preferred_starts=preferred,
        max_chars=max_chars,
    )
    chunks = []
    for index, (start, end) in enumerate(windows):
        piece = text[offsets[start][0] : offsets[end - 1][1]]
        chunk_key = f"{document.document_id}:{feature_version}:{index}:{content_hash(piece)}"
        chunks.append(
            Chunk(
                **provenance,
                chunk_id=hashlib.sha256(chunk_key.encode()).hexdigest()[:32],
                chunk_index=index,
                text=piece,
                token_count=end - start,
                feature_version=feature_version,
            )
        )
    return chunks
