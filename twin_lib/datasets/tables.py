"""Examples to and from Arrow tables in the contract's Parquet layout, and snapshot ids.

The schema is explicit so that an empty split is still a readable file with the right
columns, and so ``datasets.load_dataset("parquet", ...)`` sees chat turns as lists of
``{"role", "content"}`` records, the conversational format TRL takes as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import pyarrow as pa

from twin_lib.domain.datasets import DatasetKind, InstructionExample, PreferenceExample, Split
from twin_lib.hashing import combined_hash, sha256_json

_TURNS = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_LINEAGE = [
    ("example_id", pa.string()),
    ("document_id", pa.string()),
    ("chunk_ids", pa.list_(pa.string())),
    ("source_url", pa.string()),
    ("raw_snapshot_id", pa.string()),
    ("generator", pa.string()),
]
SCHEMAS: dict[str, pa.Schema] = {
    "instruction": pa.schema([("messages", _TURNS), *_LINEAGE]),
    "preference": pa.schema(
        [("prompt", _TURNS), ("chosen", _TURNS), ("rejected", _TURNS), *_LINEAGE]
    ),
}
Example = InstructionExample | PreferenceExample
ExampleT = TypeVar("ExampleT", InstructionExample, PreferenceExample)


def examples_to_table(kind: DatasetKind, examples: Sequence[Example]) -> pa.Table:
    schema = SCHEMAS[kind]
    rows = [e.model_dump(mode="json") for e in examples]
    return pa.Table.from_pylist(rows, schema=schema)


def table_to_examples(table: pa.Table, model: type[ExampleT]) -> list[ExampleT]:
    return [model.model_validate(row) for row in table.to_pylist()]


def content_hash(kind: DatasetKind, rows: Sequence[tuple[Example, Split]]) -> str:
    """Identity of a dataset: its kind and every example with its split, in any order."""
    return combined_hash(sha256_json([kind, split, e.model_dump(mode="json")]) for e, split in rows)


def dataset_snapshot_id(kind: DatasetKind, digest: str) -> str:
    return f"{kind}-{digest[:16]}"
