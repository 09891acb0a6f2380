"""Dataset snapshots (Parquet, one file per split) as Hugging Face datasets, cached locally."""

from __future__ import annotations

from pathlib import Path

from datasets import Dataset, load_dataset

from twin_lib.training.transfer import Transfer

SFT_COLUMNS = ("messages",)
DPO_COLUMNS = ("prompt", "chosen", "rejected")


def fetch_splits(transfer: Transfer, uris: dict[str, str], directory: Path) -> dict[str, Path]:
    """Download each split's Parquet file (``s3://`` or local) to ``directory/<split>.parquet``."""
    return {
        split: transfer.download_file(uri, directory / f"{split}.parquet")
        for split, uri in uris.items()
    }


def load_splits(files: dict[str, Path], columns: tuple[str, ...]) -> dict[str, Dataset]:
    """The splits with only the columns the trainer reads (lineage columns stay in the files)."""
    loaded = load_dataset("parquet", data_files={k: str(v) for k, v in files.items()})
    splits: dict[str, Dataset] = {}
    for split, dataset in loaded.items():
        missing = [column for column in columns if column not in dataset.column_names]
        if missing:
            raise ValueError(
                f"{files[split]} ({split}) lacks the columns {missing}; a training dataset "
                f"needs {list(columns)}: build it with the dataset step"
            )
        splits[split] = dataset.select_columns(list(columns))
    return splits
