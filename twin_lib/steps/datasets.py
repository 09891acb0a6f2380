"""Dataset steps: the author's chunks in Weaviate -> validated, versioned datasets in MinIO.

``build_instruction_dataset`` reads one author's chunks, generates examples (offline, or
with an LLM endpoint), removes duplicates, splits by document, validates with the dataset
suite and publishes a snapshot. ``build_preference_dataset`` extends an instruction
snapshot with the base model's answers as the rejected side and, when
``datasets.feedback_pairs_key`` is set, reviewers' corrections of served answers (chosen)
over the answers the twin gave (rejected), in the train split. Every drop is quarantined with
its reason: duplicates with the id of the example kept, generation failures with the raw
reply, validation failures with the expectations they broke. Quarantines and the report are
written before the gate, so a failed run still shows why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

from twin_lib.datasets.dedup import DedupParams, Dropped, deduplicate
from twin_lib.datasets.examples import (
    feature_versions,
    features_hash,
    source_chunks,
    system_turn,
)
from twin_lib.datasets.feedback import feedback_examples
from twin_lib.datasets.llm import GenerationFailure, llm_examples
from twin_lib.datasets.offline import offline_examples
from twin_lib.datasets.preference import preference_examples, prompts
from twin_lib.datasets.split import assign_splits
from twin_lib.datasets.tables import Example, table_to_examples
from twin_lib.domain.datasets import (
    OFFLINE_GENERATOR,
    SPLITS,
    DatasetSummary,
    InstructionExample,
    PreferenceExample,
    SourceChunk,
    Split,
    TokenUsage,
)
from twin_lib.generation.endpoint import ChatEndpoint
from twin_lib.generation.responder import make_responder
from twin_lib.quality.gate import QuarantinedRecord
from twin_lib.settings import DatasetSettings, MinioSettings, WeaviateSettings
from twin_lib.steps.dataset_publish import INHERITED, Origin, example_record, validate_and_publish
from twin_lib.steps.dataset_store import (
    dataset_uris,
    download_dataset,
    read_dataset_lineage,
    read_manifest,
)
from twin_lib.steps.feedback import read_feedback_pairs
from twin_lib.storage import StorageError, VectorStore, chunk_collection_schema

__all__ = [
    "build_instruction_dataset",
    "build_preference_dataset",
    "dataset_uris",
    "download_dataset",
    "read_author_chunks",
    "read_dataset_lineage",
]

logger = logging.getLogger(__name__)

_CHUNK_PROPERTIES = (
    "content",
    "title",
    "author",
    "category",
    "source_url",
    "document_id",
    "chunk_index",
    "content_hash",
    "snapshot_id",
    "feature_version",
)


def read_author_chunks(weaviate: WeaviateSettings, author: str) -> list[SourceChunk]:
    """Every chunk of ``author`` in the feature store, with its Weaviate uuid as chunk id.

    The store pages through the whole collection (the iterator takes no filter); the
    author filter is applied here.
    """
    schema = chunk_collection_schema(weaviate.collection, 1)
    names = [n for n in _CHUNK_PROPERTIES if n in schema.property_names()]
    with VectorStore(weaviate) as store:
        if not store.connect().collections.exists(weaviate.collection):
            raise StorageError(
                f"Weaviate at {weaviate.endpoint_label} has no collection "
                f"{weaviate.collection!r}: run the feature pipeline first (`twin features "
                f"<source> --author {author!r}`) or set TWIN_WEAVIATE__COLLECTION"
            )
        chunks = source_chunks(store.iter_properties(schema, names), author)
    if not chunks:
        raise ValueError(
            f"collection {weaviate.collection!r} holds no chunks by author {author!r}: check "
            "the author's name (as given to `twin features --author`) or load their sources"
        )
    logger.info(
        "read chunks",
        extra={
            "author": author,
            "chunks": len(chunks),
            "documents": len({c.document_id for c in chunks}),
        },
    )
    return chunks


def _generator_name(datasets: DatasetSettings) -> str:
    use_llm = datasets.generator == "llm" or (
        datasets.generator == "auto" and datasets.llm.base_url is not None
    )
    return f"llm:{datasets.llm.model}" if use_llm else OFFLINE_GENERATOR


def _dedup_quarantine(
    examples: Sequence[Example], dropped: Sequence[Dropped], suite: str
) -> list[QuarantinedRecord]:
    by_id = {e.example_id: e for e in examples}
    return [
        QuarantinedRecord(
            suite=suite,
            reasons=[f"{d.kind} duplicate of {d.kept_id} (Jaccard {d.similarity:.2f})"],
            record=example_record(by_id[d.example_id], kept_example_id=d.kept_id),
        )
        for d in dropped
    ]


def _generation_quarantine(failures: Sequence[GenerationFailure]) -> list[QuarantinedRecord]:
    return [
        QuarantinedRecord(
            suite="instruction_generation", reasons=[f.reason], record=f.model_dump(mode="json")
        )
        for f in failures
    ]


def build_instruction_dataset(
    author: str,
    *,
    minio: MinioSettings,
    weaviate: WeaviateSettings,
    datasets: DatasetSettings,
    base_model: Path,
    output_dir: Path,
) -> DatasetSummary:
    """The author's chunks -> instruction snapshot ``instruction/<id>/`` in the datasets bucket.

    ``base_model`` is the model directory whose tokenizer (and chat template) bounds lengths.
    """
    chunks = read_author_chunks(weaviate, author)
    generator = _generator_name(datasets)
    held: dict[str, list[QuarantinedRecord]] = {}
    usage = TokenUsage()
    if generator == OFFLINE_GENERATOR:
        examples = offline_examples(
            chunks, author=author, system_prompt=datasets.system_prompt, seed=datasets.seed
        )
    else:
        generation = llm_examples(
            chunks,
            author=author,
            system_prompt=datasets.system_prompt,
            endpoint=ChatEndpoint(datasets.llm),
            batch_size=datasets.llm_batch_size,
        )
        examples, usage = generation.examples, generation.usage
        held["instruction_generation"] = _generation_quarantine(generation.failures)
    kept, dropped = deduplicate(
        examples,
        DedupParams(
            threshold=datasets.near_duplicate_threshold,
            shingle_words=datasets.shingle_words,
            permutations=datasets.minhash_permutations,
            bands=datasets.minhash_bands,
        ),
    )
    held["instruction_dedup"] = _dedup_quarantine(examples, dropped, "instruction_dedup")
    assignment = assign_splits(
        (e.document_id for e in kept), test_fraction=datasets.test_fraction, seed=datasets.seed
    )
    logger.info(
        "instruction examples",
        extra={"generated": len(examples), "duplicates": len(dropped), "kept": len(kept)},
    )
    return validate_and_publish(
        "instruction",
        [(e, assignment[e.document_id]) for e in kept],
        origin=Origin(
            author=author,
            generator=generator,
            collection=weaviate.collection,
            feature_version=feature_versions(chunks),
            features_hash=features_hash(chunks),
            usage=usage,
        ),
        held=held,
        datasets=datasets,
        minio=minio,
        base_model=base_model,
        output_dir=output_dir,
    )


def build_preference_dataset(
    instruction_snapshot_id: str,
    *,
    minio: MinioSettings,
    datasets: DatasetSettings,
    base_model: Path,
    output_dir: Path,
) -> DatasetSummary:
    """An instruction snapshot + the base model's answers -> ``preference/<id>/``.

    The responder is ``datasets.responder``: the local model in ``base_model`` by default,
    or an OpenAI-compatible endpoint serving the base model. Splits are inherited; feedback
    pairs (``datasets.feedback_pairs_key``) go to the train split, their document id and
    source ``answer:<answer id>``, so the manifest lists the answers they came from.
    """
    source = read_manifest(minio, "instruction", instruction_snapshot_id)
    local = download_dataset(minio, "instruction", instruction_snapshot_id, output_dir / "source")
    rows: list[tuple[InstructionExample, Split]] = [
        (example, split)
        for split in SPLITS
        for example in table_to_examples(pq.read_table(str(local[split])), InstructionExample)
    ]
    responder = make_responder(datasets.responder, base_model)
    logger.info("asking the base model", extra={"prompts": len(rows), "responder": responder.name})
    rejected = responder.respond(prompts([e for e, _ in rows]))
    pairs = preference_examples([e for e, _ in rows], rejected, responder=responder.name)
    published: list[tuple[PreferenceExample, Split]] = [
        (pair, split) for pair, (_, split) in zip(pairs, rows, strict=True)
    ]
    if datasets.feedback_pairs_key:
        corrections = read_feedback_pairs(minio, datasets.feedback_pairs_key)
        system = system_turn(datasets.system_prompt, source.author)
        published += [(pair, "train") for pair in feedback_examples(corrections, system)]
        logger.info(
            "feedback pairs added",
            extra={"pairs": len(corrections), "key": datasets.feedback_pairs_key},
        )
    return validate_and_publish(
        "preference",
        published,
        origin=Origin(
            **source.model_dump(include=INHERITED),
            source_snapshot=source.snapshot_id,
            responder=responder.name,
        ),
        held={},
        datasets=datasets,
        minio=minio,
        base_model=base_model,
        output_dir=output_dir,
    )
