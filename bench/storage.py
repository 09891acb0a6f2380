"""Storage benchmark: MinIO throughput and Weaviate import rate and query latency.

Starts a private stack on free loopback ports in a temporary directory (never the
developer's), measures, prints the figures, and stops the stack.

    python bench/storage.py [--objects 10000] [--queries 300] [--mb 256]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.isolated import private_stack
from twin_lib.storage import ObjectStore, VectorRecord, VectorStore, chunk_collection_schema

DIMS = 384
WORDS = [
    "model",
    "twin",
    "writing",
    "voice",
    "article",
    "post",
    "repository",
    "lora",
    "adapter",
    "pipeline",
    "kubeflow",
    "weaviate",
    "minio",
    "embedding",
    "chunk",
    "retrieval",
    "evaluation",
    "review",
    "serving",
]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_minio(store: ObjectStore, total_mb: int, workdir: Path) -> None:
    store.ensure_buckets("bench")
    blob = os.urandom(8 * 1024 * 1024)
    count = max(1, total_mb // 8)
    started = time.perf_counter()
    for i in range(count):
        store.put_bytes("bench", f"blob-{i}", blob)
    put_s = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(count):
        store.get_bytes("bench", f"blob-{i}")
    get_s = time.perf_counter() - started
    big = workdir / "big.bin"
    big.write_bytes(os.urandom(total_mb * 1024 * 1024))
    started = time.perf_counter()
    store.put_file("bench", "big.bin", big)
    file_put_s = time.perf_counter() - started
    started = time.perf_counter()
    store.get_file("bench", "big.bin", workdir / "big.out")
    file_get_s = time.perf_counter() - started
    mb = count * 8
    print(f"minio put 8 MiB objects     : {mb / put_s:8.1f} MB/s ({count} objects)")
    print(f"minio get 8 MiB objects     : {mb / get_s:8.1f} MB/s")
    print(f"minio put {total_mb} MiB file (multipart): {total_mb / file_put_s:8.1f} MB/s")
    print(f"minio get {total_mb} MiB file (streamed) : {total_mb / file_get_s:8.1f} MB/s")


def _records(count: int, rng: random.Random) -> list[VectorRecord]:
    return [
        VectorRecord(
            properties={
                "content": " ".join(rng.choices(WORDS, k=40)),
                "title": f"doc {i // 10}",
                "author": rng.choice(["ada", "grace", "linus"]),
                "category": rng.choice(["article", "post", "repository"]),
                "source_url": f"https://example.org/{i // 10}",
                "document_id": f"doc-{i // 10}",
                "chunk_index": i % 10,
                "content_hash": f"h{i}",
                "snapshot_id": "bench",
            },
            vector=[rng.gauss(0, 1) for _ in range(DIMS)],
        )
        for i in range(count)
    ]


def _latencies(query: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        query()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def bench_weaviate(store: VectorStore, objects: int, queries: int) -> None:
    rng = random.Random(7)
    schema = chunk_collection_schema("BenchChunk", DIMS)
    store.ensure_collection(schema)
    records = _records(objects, rng)
    started = time.perf_counter()
    report = store.upsert(schema, records)
    import_s = time.perf_counter() - started
    assert report.ok and store.count(schema) == objects, report.failures[:3]
    print(
        f"weaviate batch import       : {objects / import_s:8.0f} objects/s "
        f"({objects} x {DIMS}-d in {import_s:.1f}s; target >= 1000)"
    )

    def vector() -> list[float]:
        return [rng.gauss(0, 1) for _ in range(DIMS)]

    store.near_vector(schema, vector(), limit=10)
    near = _latencies(lambda: store.near_vector(schema, vector(), limit=10), queries)
    hybrid = _latencies(
        lambda: store.hybrid(schema, " ".join(rng.choices(WORDS, k=4)), vector(), limit=10),
        queries,
    )
    filtered = _latencies(
        lambda: store.hybrid(
            schema,
            " ".join(rng.choices(WORDS, k=4)),
            vector(),
            limit=10,
            filters={"category": "post"},
        ),
        queries,
    )
    for name, samples in (("near_vector", near), ("hybrid", hybrid), ("hybrid + filter", filtered)):
        print(
            f"weaviate {name:<19}: p50 {statistics.median(samples):6.1f} ms  "
            f"p95 {percentile(samples, 0.95):6.1f} ms  ({queries} queries"
            f"{'; target p95 <= 50 ms' if name == 'hybrid' else ''})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--mb", type=int, default=256, help="MiB moved through MinIO")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp,
        private_stack(Path(tmp) / "stack") as settings,
    ):
        bench_minio(ObjectStore(settings.minio), args.mb, Path(tmp))
        with VectorStore(settings.weaviate) as vectors:
            bench_weaviate(vectors, args.objects, args.queries)
    print(
        f"storage benchmark done: {args.mb} MiB through MinIO, {args.objects} vectors, "
        f"{args.queries} queries per search kind"
    )


if __name__ == "__main__":
    main()
