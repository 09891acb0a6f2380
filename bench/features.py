"""Feature benchmark: end-to-end chunks/s against embedding-only chunks/s on the same chunks.

End-to-end = ``run_feature_steps`` (what ``twin features`` runs) over a folder of Markdown
documents against a private MinIO + Weaviate on loopback: crawl into a raw-lake snapshot,
validate documents with Great Expectations, plan, clean, chunk with the model's tokenizer,
embed, validate chunks, load into Weaviate. Embedding-only = the same model encoding the
same chunk texts in one call. The ratio is what the pipeline costs on top of the model;
the target is >= 0.8. A second run over the unchanged corpus is timed too: it must embed
nothing.

    python -m bench.features --docs 500
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from tests.support.isolated import private_stack
from twin_lib.crawl import Source
from twin_lib.demo.corpus import load_chapters, write_markdown_folder
from twin_lib.domain import EmbeddedChunk
from twin_lib.domain.records import read_records
from twin_lib.features.embedding import embed_texts, load_model
from twin_lib.settings import FeaturesSettings, TwinSettings
from twin_lib.steps.feature_run import run_feature_steps


def run_once(folder: Path, workdir: Path, settings: TwinSettings) -> tuple[float, dict]:
    started = time.perf_counter()
    metrics = run_feature_steps(
        [Source(url=str(folder))],
        author="bench",
        workdir=workdir,
        minio=settings.minio,
        weaviate=settings.weaviate,
        features=settings.features,
    )
    return time.perf_counter() - started, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=500, help="documents (KJV chapters)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    features = FeaturesSettings()
    model = load_model(features.embedding.model, features.embedding.device)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with private_stack(root / "stack") as settings:
            # Warm-up outside the timing: model, tokenizer, Great Expectations import (4-5 s).
            warmup = write_markdown_folder(load_chapters(3), root / "warmup")
            run_once(warmup, root / "work-warmup", settings)
            folder = write_markdown_folder(load_chapters(args.docs), root / "corpus")
            e2e_seconds, metrics = run_once(folder, root / "work-1", settings)
            rerun_seconds, rerun = run_once(folder, root / "work-2", settings)
            embedded = read_records(root / "work-1" / "valid_chunks.parquet", EmbeddedChunk)

    texts = [chunk.text for chunk in embedded]
    started = time.perf_counter()
    embed_texts(texts, model, features.embedding)
    embed_seconds = time.perf_counter() - started

    e2e_rate, embed_rate = len(texts) / e2e_seconds, len(texts) / embed_seconds
    tokens = sum(chunk.token_count for chunk in embedded)
    print(f"documents:             {args.docs} ({int(metrics['documents_loaded'])} loaded)")
    print(f"chunks:                {len(texts)} ({tokens / len(texts):.0f} tokens on average)")
    print(f"end-to-end:            {e2e_seconds:.1f} s, {e2e_rate:.2f} chunks/s")
    print(f"embedding only:        {embed_seconds:.1f} s, {embed_rate:.2f} chunks/s")
    print(f"ratio (target >= 0.8): {e2e_rate / embed_rate:.3f}")
    print(
        f"unchanged re-run:      {rerun_seconds:.1f} s, "
        f"{int(rerun['chunks_written'])} chunks written"
    )


if __name__ == "__main__":
    main()
