"""Dataset steps: the author's chunks in Weaviate -> validated, versioned datasets in MinIO.

``build_instruction_dataset`` reads one author's chunks, generates examples (offline, or
with an LLM endpoint), removes duplicates, splits by document, validates with the dataset
suite and publishes a snapshot. ``build_preference_dataset`` extends an instruction
snapshot with the base model's answers as the rejected side. Every drop is quarantined with
its reason: duplicates with the id of the example kept, generation failures with the raw
reply, validation failures with the expectations they broke. Quarantines and the report are
written before the gate, so a failed run still shows why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import BaseModel

from twin_lib.datasets.dedup import DedupParams, Dropped, deduplicate
from twin_lib.datasets.examples import feature_versions, features_hash, source_chunks
from twin_lib.datasets.llm import GenerationFailure, llm_examples
from twin_lib.datasets.offline import offline_examples
from twin_lib.datasets.preference import preference_examples, prompts
from twin_lib.datasets.split import assign_splits
from twin_lib.datasets.tables import (
    Example,
    content_hash,
    dataset_snapshot_id,
    examples_to_table,
    table_to_examples,
)
from twin_lib.domain.datasets import (
    OFFLINE_GENERATOR,
    SPLITS,
    DatasetKind,
    DatasetManifest,
    DatasetSummary,
    InstructionExample,
    SourceChunk,
    Split,
    SplitFile,
    TokenUsage,
)
from twin_lib.generation.endpoint import ChatEndpoint
from twin_lib.generation.responder import make_responder
from twin_lib.hashing import sha256_file
from twin_lib.quality.checks import Check
from twin_lib.quality.dataset_checks import chat_token_counter, dataset_checks, examples_frame
from twin_lib.quality.gate import QualityGateError, QuarantinedRecord
from twin_lib.quality.report import render_report, validation_metrics
from twin_lib.quality.validation import ValidationResult, validate_frame
from twin_lib.settings import DatasetSettings, MinioSettings, WeaviateSettings
from twin_lib.steps.dataset_store import (
    dataset_uris,
    download_dataset,
    find_manifest,
    previous_snapshot,
    publish,
    quarantine,
    read_dataset_lineage,
    read_manifest,
    split_key,
)
from twin_lib.storage import ObjectStore, StorageError, VectorStore, chunk_collection_schema

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


_INHERITED = {"author", "generator", "collection", "feature_version", "features_hash"}


class _Origin(BaseModel):
    """Where a dataset's examples came from, carried into its manifest."""

    author: str
    generator: str
    collection: str
    feature_version: str
    features_hash: str
    source_snapshot: str | None = None
    responder: str | None = None
    usage: TokenUsage = TokenUsage()


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
        chunks = source_chunks(list(store.iter_properties(schema, names)), author)
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


def _record(example: Example, **extra: object) -> dict[str, object]:
    return {**example.model_dump(mode="json"), **extra}


def _dedup_quarantine(
    examples: Sequence[Example], dropped: Sequence[Dropped], suite: str
) -> list[QuarantinedRecord]:
    by_id = {e.example_id: e for e in examples}
    return [
        QuarantinedRecord(
            suite=suite,
            reasons=[f"{d.kind} duplicate of {d.kept_id} (Jaccard {d.similarity:.2f})"],
            record=_record(by_id[d.example_id], kept_example_id=d.kept_id),
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


def _validate_and_publish(
    kind: DatasetKind,
    rows: Sequence[tuple[Example, Split]],
    *,
    origin: _Origin,
    held: dict[str, list[QuarantinedRecord]],
    datasets: DatasetSettings,
    minio: MinioSettings,
    base_model: Path,
    output_dir: Path,
) -> DatasetSummary:
    """Validate, quarantine, report, gate, write local files, publish (or reuse) the snapshot."""
    from transformers import AutoTokenizer

    output_dir.mkdir(parents=True, exist_ok=True)
    suite = f"{kind}_examples"
    documents = len({e.document_id for e, _ in rows})
    row_checks, whole_checks = dataset_checks(datasets, kind=kind, documents=documents)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    frame = examples_frame(rows, chat_token_counter(tokenizer))
    result = validate_frame(frame, [*row_checks, *whole_checks], suite)
    passed = [row for position, row in enumerate(rows) if position not in result.reasons]
    held[suite] = [
        QuarantinedRecord(
            suite=suite, reasons=result.reasons[position], record=_record(example, split=split)
        )
        for position, (example, split) in enumerate(rows)
        if position in result.reasons
    ]
    digest = content_hash(kind, passed)
    snapshot_id = dataset_snapshot_id(kind, digest)
    objects = ObjectStore(minio)
    objects.ensure_buckets(minio.datasets_bucket)
    quarantined = {
        name: len(records)
        for name, records in held.items()
        if quarantine(
            minio,
            prefix=datasets.quarantine_prefix,
            suite=name,
            snapshot_id=snapshot_id,
            records=records,
        )
    }
    report = output_dir / f"{suite}_validation.html"
    report.write_text(
        render_report(result, held[suite], max_failure_rate=datasets.max_failure_rate),
        encoding="utf-8",
    )
    _gate(result, whole_checks, passed, documents, datasets, report)

    files: dict[str, Path] = {}
    for split in SPLITS:
        path = output_dir / f"{split}.parquet"
        pq.write_table(examples_to_table(kind, [e for e, s in passed if s == split]), str(path))
        files[split] = path
    manifest = find_manifest(objects, minio.datasets_bucket, kind, snapshot_id)
    reused = manifest is not None
    if manifest is None:
        manifest = _manifest(
            kind, snapshot_id, digest, passed, files, origin, quarantined, datasets
        )
        manifest.parent = previous_snapshot(
            objects, minio.datasets_bucket, kind, origin.author, snapshot_id
        )
        publish(objects, minio.datasets_bucket, manifest, files)
    else:
        logger.info("dataset snapshot already exists", extra={"snapshot": snapshot_id})
    (output_dir / "manifest.json").write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return _summary(manifest, reused, files, report, result, minio)


def _gate(
    result: ValidationResult,
    whole_checks: Sequence[Check],
    passed: Sequence[tuple[Example, Split]],
    documents: int,
    datasets: DatasetSettings,
    report: Path,
) -> None:
    if result.failure_rate > datasets.max_failure_rate:
        raise QualityGateError(
            f"{result.suite}: {result.failed_rows}/{result.total} examples failed validation "
            f"({result.failure_rate:.1%} > {datasets.max_failure_rate:.1%} allowed). Inspect "
            f"{report} and the quarantine, or raise datasets.max_failure_rate"
        )
    whole = {c.describe() for c in whole_checks}
    failed = [c.check for c in result.checks if c.check in whole and not c.success]
    splits = {split for _, split in passed}
    wanted = {"train", "test"} if documents >= 2 else {"train"}
    if failed or not wanted <= splits:
        raise QualityGateError(
            f"the dataset's splits are wrong after validation: {failed or sorted(splits)} "
            f"(wanted {sorted(wanted)}); see {report}. Add documents, lower "
            "datasets.test_fraction, or fix what the quarantine shows"
        )


def _manifest(
    kind: DatasetKind,
    snapshot_id: str,
    digest: str,
    passed: Sequence[tuple[Example, Split]],
    files: dict[str, Path],
    origin: _Origin,
    quarantined: dict[str, int],
    datasets: DatasetSettings,
) -> DatasetManifest:
    examples = [e for e, _ in passed]
    return DatasetManifest(
        snapshot_id=snapshot_id,
        kind=kind,
        author=origin.author,
        created=datetime.now(UTC),
        generator=origin.generator,
        counts={s: sum(1 for _, split in passed if split == s) for s in SPLITS},
        quarantined=quarantined,
        collection=origin.collection,
        feature_version=origin.feature_version,
        features_hash=origin.features_hash,
        chunk_ids=sorted({c for e in examples for c in e.chunk_ids}),
        raw_snapshot_ids=sorted({e.raw_snapshot_id for e in examples if e.raw_snapshot_id}),
        source_urls=sorted({e.source_url for e in examples}),
        source_snapshot=origin.source_snapshot,
        content_hash=digest,
        files={
            split: SplitFile(
                key=split_key(kind, snapshot_id, split),
                sha256=sha256_file(path),
                rows=pq.read_metadata(str(path)).num_rows,
            )
            for split, path in files.items()
        },
        usage=origin.usage,
        responder=origin.responder,
        seed=datasets.seed,
        test_fraction=datasets.test_fraction,
    )


def _summary(
    manifest: DatasetManifest,
    reused: bool,
    files: dict[str, Path],
    report: Path,
    result: ValidationResult,
    minio: MinioSettings,
) -> DatasetSummary:
    usage = manifest.usage
    metrics = {
        **validation_metrics(result),
        **{f"{split}_examples": float(n) for split, n in manifest.counts.items()},
        **{f"quarantined_{suite}": float(n) for suite, n in manifest.quarantined.items()},
        "llm_requests": float(usage.requests),
        "llm_attempts": float(usage.attempts),
        "llm_prompt_tokens": float(usage.prompt_tokens),
        "llm_completion_tokens": float(usage.completion_tokens),
    }
    return DatasetSummary(
        snapshot_id=manifest.snapshot_id,
        kind=manifest.kind,
        reused=reused,
        generator=manifest.generator,
        counts=manifest.counts,
        quarantined=manifest.quarantined,
        uris=dataset_uris(minio, manifest.kind, manifest.snapshot_id),
        manifest_uri=f"s3://{minio.datasets_bucket}/{manifest.kind}/{manifest.snapshot_id}/"
        "manifest.json",
        local_files={split: str(path) for split, path in files.items()},
        reports={"validation": str(report)},
        usage=usage,
        metrics=metrics,
    )


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
    return _validate_and_publish(
        "instruction",
        [(e, assignment[e.document_id]) for e in kept],
        origin=_Origin(
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
    or an OpenAI-compatible endpoint serving the base model. Splits are inherited.
    """
    source = read_manifest(minio, "instruction", instruction_snapshot_id)
    local = download_dataset(minio, "instruction", instruction_snapshot_id, output_dir / "source")
    rows: list[tuple[InstructionExample, Split]] = [
        (example, split)  # type: ignore[misc]
        for split in SPLITS
        for example in table_to_examples("instruction", pq.read_table(str(local[split])))
    ]
    responder = make_responder(datasets.responder, base_model)
    logger.info("asking the base model", extra={"prompts": len(rows), "responder": responder.name})
    rejected = responder.respond(prompts([e for e, _ in rows]))
    pairs = preference_examples([e for e, _ in rows], rejected, responder=responder.name)
    return _validate_and_publish(
        "preference",
        [(pair, split) for pair, (_, split) in zip(pairs, rows, strict=True)],
        origin=_Origin(
            **source.model_dump(include=_INHERITED),
            source_snapshot=source.snapshot_id,
            responder=responder.name,
        ),
        held={},
        datasets=datasets,
        minio=minio,
        base_model=base_model,
        output_dir=output_dir,
    )
