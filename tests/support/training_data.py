"""A tiny, repetitive chat dataset in the training Parquet formats (SFT and DPO).

The answers follow a fixed pattern per topic, so a few dozen LoRA steps on a tiny base model
reliably lower the held-out loss: the test split uses the same topics with other wording.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SYSTEM = "You write in the voice of the author."
TOPICS = ("rivers", "bread", "lanterns", "winter", "gardens", "letters", "bridges", "clocks")
VERBS = ("Write about", "Tell me about", "Describe", "Say something about")


def _answer(topic: str) -> str:
    return f"Ah, {topic}. I always say that {topic} are patient teachers, and {topic} never hurry."


def _rejected(topic: str) -> str:
    return f"{topic.capitalize()} is a topic. There are many facts. It is hard to say."


def _rows(verbs: tuple[str, ...], kind: str) -> list[dict[str, object]]:
    rows = []
    for index, (verb, topic) in enumerate((v, t) for v in verbs for t in TOPICS):
        prompt = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"{verb} {topic}."},
        ]
        answer = {"role": "assistant", "content": _answer(topic)}
        lineage = {
            "example_id": f"{kind}-{index}",
            "document_id": f"doc-{topic}",
            "chunk_ids": [f"chunk-{topic}"],
            "source_url": f"file:///corpus/{topic}.txt",
            "raw_snapshot_id": "raw-test",
            "generator": "offline",
        }
        if kind == "sft":
            rows.append({"messages": [*prompt, answer], **lineage})
        else:
            rejected = {"role": "assistant", "content": _rejected(topic)}
            rows.append({"prompt": prompt, "chosen": [answer], "rejected": [rejected], **lineage})
    return rows


def write_tiny_datasets(directory: Path) -> dict[str, dict[str, str]]:
    """``{"sft": {"train": path, "test": path}, "dpo": {...}}`` of freshly written Parquet files."""
    uris: dict[str, dict[str, str]] = {}
    for kind in ("sft", "dpo"):
        uris[kind] = {}
        for split, verbs in (("train", VERBS[:3]), ("test", VERBS[3:])):
            path = directory / kind / f"{split}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(_rows(verbs, kind)), path)
            uris[kind][split] = str(path)
    return uris
