from __future__ import annotations

from pathlib import Path

import pytest

from twin_lib.domain.datasets import SourceChunk
from twin_lib.settings import BaseModelRecipe, TwinSettings


@pytest.fixture(scope="session")
def base_model() -> Path:
    """The platform's tiny offline base model (tokenizer with the chat template), built once
    per machine in the same cache the platform uses."""
    from twin_lib.training.base_model import ensure_base_model

    return ensure_base_model(BaseModelRecipe.tiny(), TwinSettings(_env_file=None).stack.cache_dir)


@pytest.fixture(scope="session")
def tokenizer(base_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(base_model))


def chunk(
    text: str,
    *,
    document: str = "doc-a",
    index: int = 0,
    title: str = "On rivers",
    author: str = "Ada",
) -> SourceChunk:
    return SourceChunk(
        chunk_id=f"{document}-{index}",
        document_id=document,
        chunk_index=index,
        content=text,
        title=title,
        author=author,
        category="article",
        source_url=f"https://blog.example.org/{document}",
        content_hash=f"h-{document}-{index}",
        raw_snapshot_id="raw-documents-0123456789abcdef",
    )
