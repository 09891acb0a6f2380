"""Feature benchmark: the pipeline against its encoder, the chosen encoder against fp32,
and what a refresh and a crash recovery cost, measured side by side in one run.

End-to-end = ``run_feature_steps`` (what ``twin features`` runs) over a folder of Markdown
documents (KJV chapters) against a private MinIO + Weaviate on loopback, with an empty
embedding cache: crawl, validate, plan, clean, chunk, embed, validate chunks, load. The
encoder alone = the same chunk texts encoded in one call, once in fp32 and once with the
precision ``auto`` resolves to here (bf16 where the processor has bf16 matrix units), with
nearest-neighbour recall@10 of the chosen vectors against the fp32 ones.

Then, as fractions of the full run:
- refresh: 1% of the documents edited (a paragraph appended), everything run again;
- killed load: a run into a new collection whose load dies half-way through writing to
  Weaviate, then the re-run that finishes it (timed). By the time a load runs, the embed
  step has cached every vector, so the re-run costs the same whether the cache was filled
  by the killed run or before it: the new collection shares the full run's cache.

    python -m bench.features --docs 500
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

from tests.support.isolated import private_stack
from twin_lib.crawl import Source
from twin_lib.demo.corpus import load_chapters, write_markdown_folder
from twin_lib.domain import EmbeddedChunk
from twin_lib.domain.records import read_records
from twin_lib.features.embedding import embed_texts, encoder_precision, load_model
from twin_lib.features.recall import neighbour_recall
from twin_lib.settings import EmbeddingSettings, FeaturesSettings, TwinSettings
from twin_lib.steps.feature_run import run_feature_steps
from twin_lib.storage import VectorStore


class KilledLoadError(RuntimeError):
    """Stands for the load pod being killed half-way through its writes."""


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


def timed(call: Callable[[], list[list[float]]]) -> tuple[float, list[list[float]]]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def edit(folder: Path, count: int) -> None:
    """Append a paragraph to ``count`` documents, spread over the corpus."""
    files = sorted(folder.glob("*.md"))
    for path in files[:: max(1, len(files) // count)][:count]:
        text = path.read_text(encoding="utf-8")
        path.write_text(text + "\n\nAn added paragraph, edited since.\n", encoding="utf-8")


def killed_load_then_rerun(folder: Path, root: Path, settings: TwinSettings) -> tuple[float, dict]:
    """A load into a new collection dies half-way; returns the re-run's time and metrics."""
    weaviate = settings.weaviate.model_copy(update={"collection": "BenchKilledLoad"})
    fresh = settings.model_copy(update={"weaviate": weaviate})
    upsert = VectorStore.upsert

    def write_half_then_die(self: VectorStore, schema: object, records: list) -> None:
        upsert(self, schema, records[: len(records) // 2])
        raise KilledLoadError("load killed half-way")

    with mock.patch.object(VectorStore, "upsert", write_half_then_die):
        try:
            run_once(folder, root / "work-killed", fresh)
        except KilledLoadError:
            logging.getLogger(__name__).info("the load was killed half-way, as planned")
    return run_once(folder, root / "work-resumed", fresh)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=500, help="documents (KJV chapters)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    features = FeaturesSettings()
    chosen = encoder_precision(features.embedding)
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
            edited = max(1, args.docs // 100)
            edit(folder, edited)
            refresh_seconds, refresh = run_once(folder, root / "work-3", settings)
            resumed_seconds, resumed = killed_load_then_rerun(folder, root, settings)
            embedded = read_records(root / "work-1" / "valid_chunks.parquet", EmbeddedChunk)

    texts = [chunk.text for chunk in embedded]
    tokens = sum(chunk.token_count for chunk in embedded)
    fp32_seconds, fp32 = timed(
        lambda: embed_texts(texts, model, EmbeddingSettings(precision="fp32"))
    )
    chosen_seconds, vectors = timed(
        lambda: embed_texts(texts, model, EmbeddingSettings(precision=chosen))
    )
    recall = neighbour_recall(fp32, vectors, k=10)

    e2e_rate = len(texts) / e2e_seconds
    fp32_rate, chosen_rate = len(texts) / fp32_seconds, len(texts) / chosen_seconds
    print(f"documents:                {args.docs} ({int(metrics['documents_loaded'])} loaded)")
    print(f"chunks:                   {len(texts)} ({tokens / len(texts):.0f} tokens on average)")
    print(f"encoder precision:        {chosen} (features.embedding.precision=auto)")
    print(f"end-to-end:               {e2e_seconds:.1f} s, {e2e_rate:.2f} chunks/s")
    print(f"fp32 encoder alone:       {fp32_seconds:.1f} s, {fp32_rate:.2f} chunks/s")
    print(f"{f'{chosen} encoder alone:':<26}{chosen_seconds:.1f} s, {chosen_rate:.2f} chunks/s")
    print(f"end-to-end / fp32 alone:  {e2e_rate / fp32_rate:.3f}")
    print(f"{f'end-to-end / {chosen} alone:':<26}{e2e_rate / chosen_rate:.3f} (target >= 0.8)")
    print(
        f"{f'{chosen} vs fp32 tokens/s:':<26}{tokens / chosen_seconds:.0f} vs "
        f"{tokens / fp32_seconds:.0f} ({fp32_seconds / chosen_seconds:.2f}x, target >= 2x "
        f"with bf16 units); recall@10 {recall:.4f} (target >= 0.99)"
    )
    print(
        f"unchanged re-run:         {rerun_seconds:.1f} s = {rerun_seconds / e2e_seconds:.1%} "
        f"of a full run, {int(rerun['chunks_written'])} chunks written"
    )
    print(
        f"{f'refresh, {edited} edited:':<26}{refresh_seconds:.1f} s = "
        f"{refresh_seconds / e2e_seconds:.1%} of a full run (target <= 3%); "
        f"{int(refresh['documents_loaded'])} documents loaded, "
        f"{int(refresh['embedding_cache_hits'])} vectors cached, "
        f"{int(refresh['texts_encoded'])} encoded"
    )
    print(
        f"re-run after killed load: {resumed_seconds:.1f} s = "
        f"{resumed_seconds / e2e_seconds:.1%} of a full run (target <= 10%); "
        f"{int(resumed['documents_loaded'])} documents loaded, "
        f"{int(resumed['texts_encoded'])} texts encoded"
    )


if __name__ == "__main__":
    main()
