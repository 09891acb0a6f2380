"""Encoding damage: what ftfy can repair, and what is left once it has tried.

Shared by cleaning (which repairs) and document validation (which quarantines what cannot
be repaired), so both agree on what counts as damage.
"""

from __future__ import annotations

import ftfy
from ftfy.badness import badness


def repair_encoding(text: str) -> str:
    """Undo mojibake (UTF-8 read as Latin-1 or cp1252, and the like) where ftfy can.

    Replacement characters cannot be repaired: the bytes they stood for are gone.
    """
    return ftfy.fix_encoding(text)


def encoding_damage(text: str) -> int:
    """Replacement characters and mojibake sequences left after ``repair_encoding``."""
    repaired = repair_encoding(text)
    return repaired.count("\ufffd") + badness(repaired)
