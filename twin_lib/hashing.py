"""Content hashes and content-derived identifiers.

Every idempotent write in the platform is keyed by what is written, not by when: re-running a
step after a crash then overwrites the same keys and objects instead of adding copies.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

_UUID_NAMESPACE = uuid.UUID("6f1d0c6e-3b1a-5c55-9f3e-2a7f6b1f0a11")
_READ_CHUNK = 1024 * 1024


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def sha256_stream(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    while block := stream.read(_READ_CHUNK):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with path.open("rb") as stream:
        return sha256_stream(stream)


def sha256_json(value: object) -> str:
    """Hash of a JSON-able value that does not depend on key order or whitespace."""
    return sha256_text(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str))


def combined_hash(hashes: Iterable[str]) -> str:
    """Order-independent hash of a set of content hashes: the identity of a dataset."""
    return sha256_text("\n".join(sorted(hashes)))


def content_uuid(*parts: str) -> str:
    """A UUID that is the same every time for the same parts (a stable vector-store id)."""
    return str(uuid.uuid5(_UUID_NAMESPACE, "\x1f".join(parts)))
