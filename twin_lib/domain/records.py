"""Domain records to and from Parquet, the format of KFP datasets and raw-lake snapshots."""

from __future__ import annotations

import json
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

Record = TypeVar("Record", bound=BaseModel)


def _dict_fields(model: type[BaseModel]) -> set[str]:
    """Free-form dict fields are stored as JSON text: Parquet structs need fixed keys."""
    return {
        name
        for name, field in model.model_fields.items()
        if typing.get_origin(field.annotation) is dict or field.annotation is dict
    }


def records_to_table(records: Sequence[BaseModel], model: type[BaseModel]) -> pa.Table:
    as_json = _dict_fields(model)
    rows = []
    for record in records:
        row = record.model_dump(mode="python")
        rows.append({k: json.dumps(v) if k in as_json else v for k, v in row.items()})
    return pa.Table.from_pylist(rows)


def table_to_records(table: pa.Table, model: type[Record]) -> list[Record]:
    as_json = _dict_fields(model)
    return [
        model.model_validate({k: json.loads(v) if k in as_json else v for k, v in row.items()})
        for row in table.to_pylist()
    ]


def write_records(path: Path | str, records: Sequence[BaseModel], model: type[BaseModel]) -> int:
    """Write records as one Parquet file (an empty file when there are none)."""
    pq.write_table(records_to_table(records, model), str(path))
    return len(records)


def read_records(path: Path | str, model: type[Record]) -> list[Record]:
    return table_to_records(pq.read_table(str(path)), model)
