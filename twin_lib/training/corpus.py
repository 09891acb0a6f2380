"""The English corpus the offline base model is pre-trained on.

Provenance: the text that ships with CPython itself, so it is on every machine that runs the
platform and needs no download and no new dependency: the reference documentation topics of
``pydoc_data.topics`` (the language reference and library chapters that ``help()`` shows)
and the docstrings of the pure-Python standard library modules. Licence: Python Software
Foundation License Version 2 (the CPython licence, permissive, OSI-approved), which covers
both the documentation and the sources. It is technical English prose, deliberately unlike
the demo author's corpus (the King James Bible), so a twin's style comes from fine-tuning.

Cleaning: text is repaired with ftfy, doctest lines and reST directives are dropped, and
documents are split into train and validation by a hash of their name, so no document is in
both. The corpus fingerprint (its content hash and Python version) goes into the recipe record.
"""

from __future__ import annotations

import ast
import logging
import re
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import ftfy
from pydantic import BaseModel

from twin_lib.hashing import sha256_text

logger = logging.getLogger(__name__)

PROVENANCE = (
    f"CPython {sys.version_info.major}.{sys.version_info.minor} documentation: pydoc_data "
    "topics and standard-library docstrings"
)
LICENCE = "Python Software Foundation License Version 2"
_SKIPPED_PACKAGES = frozenset(
    {"test", "tests", "idlelib", "lib2to3", "site-packages", "turtledemo"}
)
_MIN_DOC_CHARS = 80
_NOISE_LINE = re.compile(r"^\s*(>>>|\.\.\.|\.\. |:[a-z]+:)")
_BLANK_RUNS = re.compile(r"\n{3,}")


class Document(BaseModel):
    name: str
    text: str


class Corpus(BaseModel):
    """Documents split into train and validation, with the identity that keys the cache."""

    train: list[Document]
    validation: list[Document]
    provenance: str = PROVENANCE
    licence: str = LICENCE

    @property
    def fingerprint(self) -> str:
        return sha256_text("\x1e".join(d.name + "\x1f" + d.text for d in self.documents))

    @property
    def documents(self) -> list[Document]:
        return [*self.train, *self.validation]

    @property
    def chars(self) -> int:
        return sum(len(d.text) for d in self.documents)


def clean(text: str) -> str:
    """Prose only: repaired encoding, no doctest sessions or reST markup lines."""
    lines = [line.rstrip() for line in ftfy.fix_text(text).splitlines()]
    kept = "\n".join(line for line in lines if not _NOISE_LINE.match(line))
    return _BLANK_RUNS.sub("\n\n", kept).strip()


def _topic_documents() -> Iterator[Document]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield Document(name=f"topic:{name}", text=topics[name])


def _module_docstrings(path: Path) -> str:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return ""
    docs = (
        ast.get_docstring(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    )
    return "\n\n".join(d for d in docs if d and len(d) >= _MIN_DOC_CHARS)


def _stdlib_documents() -> Iterator[Document]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if _SKIPPED_PACKAGES.intersection(relative.parts):
            continue
        yield Document(name=f"stdlib:{relative.as_posix()}", text=_module_docstrings(path))


def _raw_documents() -> Iterator[Document]:
    """Lazily, so a capped corpus (the tiny recipe) never parses the standard library."""
    yield from _topic_documents()
    yield from _stdlib_documents()


def _capped(max_chars: int | None) -> Iterator[Document]:
    """Cleaned documents in a fixed order until ``max_chars`` characters have been taken."""
    total = 0
    for raw in _raw_documents():
        text = clean(raw.text)
        if len(text) < _MIN_DOC_CHARS:
            continue
        if max_chars is not None:
            text = text[: max_chars - total]
        yield Document(name=raw.name, text=text)
        total += len(text)
        if max_chars is not None and total >= max_chars:
            return


def load_corpus(validation_fraction: float, max_chars: int | None = None) -> Corpus:
    """The cleaned documents split by document: the ones whose name hashes lowest (at least
    one) are held out, so the split is stable, whole documents stay on one side, and a small
    capped corpus still has a validation side."""
    documents = list(_capped(max_chars))
    if len(documents) < 2:
        raise ValueError(
            f"the corpus has {len(documents)} document(s) under max_chars={max_chars}: "
            "raise corpus_max_chars so that it can be split into train and validation"
        )
    held_out = max(1, round(validation_fraction * len(documents)))
    ranked = sorted(documents, key=lambda d: sha256_text(d.name))
    validation_names = {d.name for d in ranked[:held_out]}
    text = Corpus(
        train=[d for d in documents if d.name not in validation_names],
        validation=[d for d in documents if d.name in validation_names],
    )
    logger.info(
        "corpus loaded",
        extra={"documents": len(documents), "chars": text.chars, "source": PROVENANCE},
    )
    return text
