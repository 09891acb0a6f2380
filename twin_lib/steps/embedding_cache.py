"""Vectors kept in MinIO by (encoder, chunk text hash), so no text is encoded twice.

The encoder (model, revision, size, normalisation and precision) names a folder
``<cache_prefix>/<encoder id>/`` of the features bucket; each folder holds Parquet objects
of (text hash, float32 vector) rows, one per slice the encoder finished. One object per
slice, not per chunk: a slice is one request however many chunks it holds, and a run that
dies half-way keeps every slice it finished. Objects are content-addressed, so writing the
same slice twice writes one object; a lookup that finds many small objects merges them
into one, so a cache that grew over many refreshes is read in a few requests.

Vectors are stored as the float32 values the collection receives, so a collection rebuilt
from the cache is identical to the one the pipeline loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from twin_lib.hashing import sha256_json
from twin_lib.storage import ObjectStore
from twin_lib.storage.object_store import table_to_parquet

logger = logging.getLogger(__name__)

_READERS = 8
_MERGE_AT = 16
"""A lookup that reads more objects than this rewrites them as one."""


class EmbeddingCache:
    """The cached vectors of one encoder."""

    def __init__(self, objects: ObjectStore, bucket: str, prefix: str, encoder: str) -> None:
        self.objects = objects
        self.bucket = bucket
        self.encoder = encoder
        self.root = f"{prefix}/{sha256_json(encoder)[:16]}"

    def _keys(self) -> list[str]:
        return [
            info.key
            for info in self.objects.list(self.bucket, f"{self.root}/")
            if info.key.endswith(".parquet")
        ]

    def lookup(self, text_hashes: Iterable[str]) -> dict[str, list[float]]:
        """The cached vectors of the given text hashes (those not cached are absent)."""
        wanted = set(text_hashes)
        keys = self._keys() if wanted else []
        if not keys:
            return {}
        with ThreadPoolExecutor(_READERS) as pool:
            tables = list(pool.map(lambda key: self.objects.get_parquet(self.bucket, key), keys))
        if len(keys) > _MERGE_AT:
            self._merge(tables, keys)
        value_set = pa.array(sorted(wanted), pa.string())
        found: dict[str, list[float]] = {}
        for table in tables:  # only the wanted rows become Python lists
            found.update(_rows(table.filter(pc.is_in(table["text_hash"], value_set=value_set))))
        return found

    def store(self, vectors: Mapping[str, Sequence[float]]) -> None:
        """Keep one slice of vectors as one object (an object already there is left alone)."""
        if vectors:
            self.objects.put_content_addressed(
                self.bucket, self.root, table_to_parquet(_table(vectors)), suffix=".parquet"
            )

    def _merge(self, tables: Sequence[pa.Table], keys: list[str]) -> None:
        """Replace the objects read by one; another run's objects written meanwhile stay."""
        merged = pa.concat_tables(tables)
        _, first = np.unique(merged["text_hash"].to_numpy(zero_copy_only=False), return_index=True)
        key = self.objects.put_content_addressed(
            self.bucket, self.root, table_to_parquet(merged.take(first)), suffix=".parquet"
        )
        for old in keys:
            if old != key:
                self.objects.delete(self.bucket, old)
        logger.info("embedding cache: merged %d objects into %s", len(keys), key)


def _table(vectors: Mapping[str, Sequence[float]]) -> pa.Table:
    hashes = sorted(vectors)
    matrix = np.asarray([vectors[h] for h in hashes], dtype=np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])
    return pa.table({"text_hash": pa.array(hashes, pa.string()), "vector": column})


def _rows(table: pa.Table) -> dict[str, list[float]]:
    vectors = table["vector"].combine_chunks()
    matrix = vectors.flatten().to_numpy().reshape(len(table), vectors.type.list_size)
    return dict(zip(table["text_hash"].to_pylist(), matrix.tolist(), strict=True))
