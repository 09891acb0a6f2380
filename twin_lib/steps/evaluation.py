"""Evaluation step: a registered version against its base model, stored with the version.

Both models answer the same held-out questions through the same twin: one retriever (each
question retrieved once and shared, so both prompts hold the same passages), the same
system prompt and prompt building, greedy decoding; only the weights differ. The step reads
the version's instruction snapshot (held-out answers are the author's unseen text, their
questions the evaluation's), the feature store (other authors' text for the style floor,
content hashes for retrieval relevance), and writes ``evaluation.json`` and
``evaluation.html`` beside the version in the models bucket, with a summary on the version.
One call, :func:`evaluate_version`, does it all, so a KFP component is a thin wrapper.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from pydantic import BaseModel, Field, ValidationError

from twin_lib.datasets.tables import table_to_examples
from twin_lib.domain.chat import ChatMessage
from twin_lib.domain.datasets import InstructionExample
from twin_lib.evaluation.answers import answer_stats
from twin_lib.evaluation.grounding import grounding
from twin_lib.evaluation.judge import JudgeItem, judge_pairs
from twin_lib.evaluation.perplexity import held_out_perplexity
from twin_lib.evaluation.ranking import ranking_figures
from twin_lib.evaluation.report import report_html
from twin_lib.evaluation.results import (
    EvaluationResult,
    JudgeFigures,
    ModelFigures,
    RetrievalFigures,
    Sample,
    StyleCalibration,
    StyleScore,
)
from twin_lib.evaluation.style import calibrated_style, style_position
from twin_lib.evaluation.vectors import Embedder
from twin_lib.registry.models import ModelVersion
from twin_lib.registry.store import ModelRegistry
from twin_lib.serving.contracts import (
    GenerationParams,
    RetrievedChunk,
    Retriever,
    ServedModel,
    TwinAnswer,
)
from twin_lib.serving.prompt import question_of
from twin_lib.serving.twin import Twin, build_twin, close_if_closable
from twin_lib.settings import EmbeddingSettings, TwinSettings
from twin_lib.steps.dataset_store import download_dataset
from twin_lib.steps.model_files import local_model_dir
from twin_lib.steps.serving import resolve_served_model
from twin_lib.storage import ObjectStore, StorageError, VectorStore, chunk_collection_schema

logger = logging.getLogger(__name__)

RESULT_FILE = "evaluation.json"
REPORT_FILE = "evaluation.html"
MAX_FLOOR_TEXTS = 200


class SharedRetriever:
    """Retrieves each question once; the twin and the base both get exactly those passages."""

    def __init__(self, inner: Retriever) -> None:
        self.inner = inner
        self._found: dict[str, list[RetrievedChunk]] = {}

    def retrieve(self, question: str) -> list[RetrievedChunk]:
        if question not in self._found:
            self._found[question] = self.inner.retrieve(question)
        return self._found[question]

    def close(self) -> None:
        close_if_closable(self.inner)


def embedder(settings: EmbeddingSettings) -> Embedder:
    """The feature embedding model, unit-normalised rows."""
    from twin_lib.features.embedding import load_model

    model = load_model(settings.model, settings.device, settings.revision)

    def embed(texts: Sequence[str]) -> np.ndarray:
        return model.encode(
            list(texts),
            batch_size=settings.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    return embed


def question(example: InstructionExample) -> str:
    """The user turn the author's answer replies to."""
    return question_of(example.messages[:-1])


def _evaluation_settings(settings: TwinSettings, model: ModelVersion) -> TwinSettings:
    """Serve exactly this version, candidate or not, from weights in this process."""
    serving = settings.serving.model_copy(
        update={
            "model_name": model.name,
            "version": model.version,
            "allow_unapproved": True,
            "generator": "local",
        }
    )
    return settings.model_copy(update={"serving": serving})


def _instruction_snapshot(model: ModelVersion) -> str:
    snapshot = model.dataset_snapshots.get("instruction")
    if snapshot is None:
        raise ValueError(
            f"{model.name} {model.version} records no instruction dataset, so it has no "
            "held-out text to be evaluated on; evaluate a version the training pipeline made"
        )
    return snapshot


def _instruction_splits(
    settings: TwinSettings, model: ModelVersion, workdir: Path
) -> dict[str, list[InstructionExample]]:
    snapshot = _instruction_snapshot(model)
    files = download_dataset(settings.minio, "instruction", snapshot, workdir)
    splits = {
        split: table_to_examples(pq.read_table(path), InstructionExample)
        for split, path in files.items()
    }
    if not splits.get("test") or not splits.get("train"):
        raise ValueError(
            f"instruction snapshot {snapshot} of {model.name} {model.version} has "
            f"{len(splits.get('train', []))} training and {len(splits.get('test', []))} "
            "held-out examples; evaluation needs both (rebuild the dataset with more documents "
            "or a larger datasets.test_fraction)"
        )
    return splits


class CollectionTexts(BaseModel):
    """What the evaluation needs from the feature store, read in one pass."""

    content_hashes: dict[str, str] = Field(
        description="the author's chunk id -> content hash: a reposted copy of the source "
        "chunk is as good a retrieval hit as the chunk itself"
    )
    other_authors: list[str] = Field(description="other authors' chunks: the style floor")


def read_collection_texts(settings: TwinSettings, collection: str, author: str) -> CollectionTexts:
    """One scan of the collection (the store's iterator takes no filter)."""
    weaviate = settings.weaviate.model_copy(update={"collection": collection})
    names = ["author", "content", "content_hash", "document_id", "chunk_index"]
    with VectorStore(weaviate) as store:
        if not store.connect().collections.exists(collection):
            raise StorageError(
                f"Weaviate at {weaviate.endpoint_label} has no collection {collection!r}, "
                "which the evaluated model retrieves from: run the feature pipeline first"
            )
        rows = list(store.iter_properties(chunk_collection_schema(collection, 1), names))
    others = sorted(
        (row for row in rows if row.get("author") != author),
        key=lambda row: (str(row.get("document_id")), int(row.get("chunk_index") or 0)),
    )
    return CollectionTexts(
        content_hashes={
            row["uuid"]: str(row.get("content_hash") or "")
            for row in rows
            if row.get("author") == author
        },
        other_authors=[str(row.get("content") or "") for row in others][:MAX_FLOOR_TEXTS],
    )


def _answer_all(twin: Twin, questions: Sequence[str], params: GenerationParams) -> list[TwinAnswer]:
    answers = []
    for number, question in enumerate(questions, 1):
        answers.append(twin.answer([ChatMessage(role="user", content=question)], params))
        logger.info(
            "evaluation answers",
            extra={"model": twin.model.label, "done": number, "questions": len(questions)},
        )
    return answers


def _passages(retriever: SharedRetriever, answer: TwinAnswer) -> list[str]:
    """The passages the answer's prompt held."""
    shown = {source.chunk_id for source in answer.sources}
    return [c.content for c in retriever.retrieve(answer.question) if c.chunk_id in shown]


def _figures(
    settings: TwinSettings,
    label: str,
    weights: Path,
    answers: Sequence[TwinAnswer],
    *,
    held_out: Sequence[str],
    style: StyleScore,
    calibration: StyleCalibration,
    retriever: SharedRetriever,
    embed: Embedder,
) -> ModelFigures:
    config = settings.evaluation
    return ModelFigures(
        label=label,
        weights=str(weights),
        perplexity=held_out_perplexity(
            weights,
            held_out,
            batch_size=config.perplexity_batch_size,
            max_tokens=config.perplexity_max_tokens,
        ),
        style=style,
        style_position=style_position(style, calibration.ceiling, calibration.floor),
        grounding=grounding(
            [(a.text, _passages(retriever, a)) for a in answers],
            embed=embed,
            cosine=config.grounding_cosine,
            overlap=config.grounding_overlap,
        ),
        answers=answer_stats(
            [a.text for a in answers],
            [a.completion_tokens for a in answers],
            config.refusal_patterns,
        ),
    )


@dataclass
class _Run:
    """What both models are measured on, and their answers."""

    model: ModelVersion
    served: ServedModel
    base_weights: Path
    held_out: list[InstructionExample]
    rest: list[InstructionExample]
    asked: list[InstructionExample]
    twin_answers: list[TwinAnswer] = field(default_factory=list)
    base_answers: list[TwinAnswer] = field(default_factory=list)


def _prepare(settings: TwinSettings, model: ModelVersion, served: ServedModel) -> _Run:
    """The held-out data first (a version without it is refused before any model loads)."""
    with tempfile.TemporaryDirectory(prefix="twin-evaluation-") as workdir:
        splits = _instruction_splits(settings, model, Path(workdir))
    return _Run(
        model=model,
        served=served,
        base_weights=local_model_dir(model.base_model, settings),
        held_out=splits["test"],
        rest=splits["train"],
        asked=splits["test"][: settings.evaluation.max_questions],
    )


def _answer_and_retrieve(
    settings: TwinSettings, run: _Run, hashes: dict[str, str]
) -> tuple[RetrievalFigures, SharedRetriever]:
    """Both models answer the asked questions through one retriever, which is then scored."""
    from twin_lib.serving.generators import make_generator

    params = GenerationParams(max_tokens=settings.evaluation.max_new_tokens, temperature=0.0)
    questions = [question(e) for e in run.asked]
    twin = build_twin(settings, run.served)
    retriever = SharedRetriever(twin.retriever)
    twin.retriever = retriever
    base: Twin | None = None
    try:
        run.twin_answers = _answer_all(twin, questions, params)
        base = Twin(
            run.served.model_copy(update={"version": "base", "model_dir": run.base_weights}),
            retriever,
            make_generator(settings.serving, run.base_weights),
            settings.serving,
        )
        run.base_answers = _answer_all(base, questions, params)
        probes = (run.held_out + run.rest)[: settings.evaluation.max_retrieval_questions]
        figures = ranking_figures(
            [[c.content_hash for c in retriever.retrieve(question(e))] for e in probes],
            [{hashes.get(chunk, chunk) for chunk in e.chunk_ids} for e in probes],
            settings.serving.retrieval.top_k,
        )
    finally:
        if base is not None:
            close_if_closable(base.generator)
        twin.close()
    return figures, retriever


def _judge(settings: TwinSettings, run: _Run, retriever: SharedRetriever) -> JudgeFigures | None:
    config = settings.evaluation.judge
    if not config.enabled:
        return None
    from twin_lib.generation.endpoint import ChatEndpoint

    items = [
        JudgeItem(
            question=twin.question,
            reference=example.answer,
            passages=_passages(retriever, twin),
            twin=twin.text,
            base=base.text,
        )
        for example, twin, base in zip(run.asked, run.twin_answers, run.base_answers, strict=True)
    ]
    return judge_pairs(ChatEndpoint(config.endpoint), items, config.max_tokens)


def evaluate_version(
    settings: TwinSettings,
    version: str | None = None,
    *,
    name: str | None = None,
    report_path: Path | None = None,
) -> EvaluationResult:
    """Evaluate ``version`` (default: the newest registered) of ``name`` (default:
    serving.model_name, else registry.default_model) against its base model; store the
    results beside it and return them. ``report_path`` also gets a copy of the HTML report."""
    started = time.monotonic()
    registry = ModelRegistry(settings.minio, settings.registry)
    model = registry.get(
        name or settings.serving.model_name or settings.registry.default_model, version
    )
    _instruction_snapshot(model)  # refused before anything is read or loaded
    settings = _evaluation_settings(settings, model)
    served = resolve_served_model(settings)
    collection = read_collection_texts(settings, served.collection, served.author)
    digest = inputs_digest(settings, model, collection)
    stored = _stored_with(settings, model, digest)
    if stored is not None:
        logger.info(
            "evaluation reused: nothing it depends on changed",
            extra={"model": stored.label, "report": stored.report_uri},
        )
        if report_path is not None:
            _copy_report(settings, registry, stored, report_path)
        return stored
    run = _prepare(settings, model, served)
    logger.info(
        "evaluating",
        extra={
            "model": run.served.label,
            "base_model": run.model.base_model,
            "questions": len(run.asked),
            "held_out_texts": len(run.held_out),
        },
    )
    retrieval, retriever = _answer_and_retrieve(settings, run, collection.content_hashes)
    embed = embedder(settings.features.embedding)
    twin_style, base_style, calibration = calibrated_style(
        [e.answer for e in run.rest],
        twin=[a.text for a in run.twin_answers],
        base=[a.text for a in run.base_answers],
        author_answers=[e.answer for e in run.asked],
        other_authors=collection.other_authors,
        embed=embed,
        ngrams=settings.evaluation.char_ngrams,
    )
    measure = functools.partial(
        _figures,
        settings,
        held_out=[e.answer for e in run.held_out],
        calibration=calibration,
        retriever=retriever,
        embed=embed,
    )
    answers = zip(run.asked, run.twin_answers, run.base_answers, strict=True)
    result = EvaluationResult(
        model=run.model.name,
        version=run.model.version,
        base_model=run.model.base_model,
        author=run.served.author,
        collection=run.served.collection,
        questions=len(run.asked),
        candidate=measure(
            run.served.label, run.served.model_dir, run.twin_answers, style=twin_style
        ),
        base=measure("base", run.base_weights, run.base_answers, style=base_style),
        calibration=calibration,
        retrieval=retrieval,
        judge=_judge(settings, run, retriever),
        samples=[
            Sample(
                question=twin.question,
                reference=example.answer,
                sources=twin.sources,
                base_answer=base.text,
                twin_answer=twin.text,
            )
            for example, twin, base in list(answers)[: settings.evaluation.samples]
        ],
        inputs_digest=digest,
    )
    return store_evaluation(settings, registry, result, started, report_path)


def inputs_digest(settings: TwinSettings, model: ModelVersion, collection: CollectionTexts) -> str:
    """Everything the figures depend on, hashed: the version (its weights, datasets and
    base), the evaluation, retrieval and generation settings, and the collection's chunks."""
    inputs = {
        "model": [model.name, model.version, model.merged_uri, model.dataset_snapshots],
        "evaluation": settings.evaluation.model_dump(mode="json"),
        "serving": settings.serving.model_dump(
            mode="json",
            include={"retrieval", "generator", "endpoint", "precision", "max_prompt_chars"},
        ),
        "embedding": settings.features.embedding.model_dump(mode="json"),
        "chunks": sorted(collection.content_hashes.items()),
        "other_authors": collection.other_authors,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _stored_with(
    settings: TwinSettings, model: ModelVersion, digest: str
) -> EvaluationResult | None:
    if not model.evaluation:
        return None
    try:
        stored = read_evaluation(settings, model.name, model.version)
    except (StorageError, ValidationError):
        return None
    return stored if stored.inputs_digest == digest else None


def _copy_report(
    settings: TwinSettings, registry: ModelRegistry, result: EvaluationResult, path: Path
) -> None:
    key = result.report_uri.removeprefix(f"s3://{registry.bucket}/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ObjectStore(settings.minio).get_bytes(registry.bucket, key))


def store_evaluation(
    settings: TwinSettings,
    registry: ModelRegistry,
    result: EvaluationResult,
    started: float,
    report_path: Path | None,
) -> EvaluationResult:
    """evaluation.json and evaluation.html beside the version, the summary on it."""
    prefix = registry.version_uri(result.model, result.version).removeprefix(
        f"s3://{registry.bucket}/"
    )
    result = result.model_copy(
        update={
            "json_uri": f"s3://{registry.bucket}/{prefix}{RESULT_FILE}",
            "report_uri": f"s3://{registry.bucket}/{prefix}{REPORT_FILE}",
            "duration_s": round(time.monotonic() - started, 1),
        }
    )
    page = report_html(result)
    objects = ObjectStore(settings.minio)
    objects.put_bytes(
        registry.bucket, f"{prefix}{REPORT_FILE}", page.encode("utf-8"), content_type="text/html"
    )
    objects.put_json(registry.bucket, f"{prefix}{RESULT_FILE}", result.model_dump(mode="json"))
    registry.record_evaluation(result.model, result.version, result.summary())
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(page, encoding="utf-8")
    logger.info(
        "evaluation stored",
        extra={"model": result.label, "report": result.report_uri, "duration_s": result.duration_s},
    )
    return result


def read_evaluation(settings: TwinSettings, name: str, version: str) -> EvaluationResult:
    """The stored evaluation.json of a version."""
    registry = ModelRegistry(settings.minio, settings.registry)
    prefix = registry.version_uri(name, version).removeprefix(f"s3://{registry.bucket}/")
    data = ObjectStore(settings.minio).get_json(registry.bucket, f"{prefix}{RESULT_FILE}")
    return EvaluationResult.model_validate(data)
