"""Feature benchmark: end-to-end chunks/s against embedding-only chunks/s on the same chunks.

End-to-end = crawl a folder of Markdown documents, clean, chunk with the model's tokenizer,
embed, and validate the chunks with Great Expectations (no services needed). Embedding-only
= the same model encoding the same chunk texts in one call. The ratio shows what the
pipeline costs on top of the model; the target is >= 0.8.

    python -m bench.features --docs 500
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from tests.fixtures.corpus.kjv import load_chapters, write_markdown_folder
from twin_lib.crawl import Source, crawl_sources
from twin_lib.domain import EmbeddedChunk
from twin_lib.features.chunking import chunk_document
from twin_lib.features.cleaning import clean_document
from twin_lib.features.config import FeaturesSettings
from twin_lib.features.embedding import embed_chunks, embed_texts, load_model, model_window
from twin_lib.quality.checks import chunk_checks
from twin_lib.quality.frames import chunks_frame
from twin_lib.quality.validation import validate_frame


def end_to_end(folder: Path, features: FeaturesSettings) -> list[EmbeddedChunk]:
    model = load_model(features.embedding.model, features.embedding.device)
    window = model_window(model)
    report = crawl_sources([Source(url=str(folder))], author="bench", settings=features.crawl)
    chunks = [
        chunk
        for document in report.documents
        for chunk in chunk_document(
            clean_document(document),
            features.chunking.for_category(document.category),
            model.tokenizer,
            window,
        )
    ]
    embedded = embed_chunks(chunks, model, features.embedding)
    checks = chunk_checks(
        features.quality, max_tokens=window, dimension=features.embedding.dimensions
    )
    result = validate_frame(chunks_frame(embedded), checks, "chunks")
    assert result.failed_rows == 0, result.reasons
    return embedded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=500, help="documents (KJV chapters)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    features = FeaturesSettings()
    model = load_model(features.embedding.model, features.embedding.device)

    with tempfile.TemporaryDirectory() as workdir:
        # Warm-up outside the timing: model, tokenizer, Great Expectations import (4-5 s).
        end_to_end(write_markdown_folder(load_chapters(3), Path(workdir) / "warmup"), features)
        folder = write_markdown_folder(load_chapters(args.docs), Path(workdir) / "corpus")
        started = time.perf_counter()
        embedded = end_to_end(folder, features)
        e2e_seconds = time.perf_counter() - started

    texts = [chunk.text for chunk in embedded]
    started = time.perf_counter()
    embed_texts(texts, model, features.embedding)
    embed_seconds = time.perf_counter() - started

    e2e_rate, embed_rate = len(texts) / e2e_seconds, len(texts) / embed_seconds
    tokens = sum(chunk.token_count for chunk in embedded)
    print(f"documents:            {args.docs}")
    print(f"chunks:               {len(texts)} ({tokens / len(texts):.0f} tokens on average)")
    print(f"end-to-end:           {e2e_seconds:.1f} s, {e2e_rate:.2f} chunks/s")
    print(f"embedding only:       {embed_seconds:.1f} s, {embed_rate:.2f} chunks/s")
    print(f"ratio (target >= 0.8): {e2e_rate / embed_rate:.3f}")


if __name__ == "__main__":
    main()
