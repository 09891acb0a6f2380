"""The twin's retriever: the author's chunks in Weaviate that answer a question.

A question is cleaned by the feature pipeline's own ``clean_text`` (article rules) and
embedded by the same model and settings as the chunks, so both sides of every comparison
are made the same way. Hybrid search (BM25 + vectors) is filtered to one author: the twin's,
or, with self-query on, a known author the question names. With expansion on, each extra
phrasing is searched too and the hits are merged by chunk id. The merged candidates are
reranked, deduplicated and cut to the prompt's budget by ``twin_lib.serving.rerank``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from twin_lib.domain import Category
from twin_lib.features.cleaning import clean_text
from twin_lib.features.embedding import embed_texts, load_model
from twin_lib.serving.contracts import RetrievedChunk
from twin_lib.serving.query import QueryRewriter
from twin_lib.serving.rerank import Candidate, deduplicate, make_reranker, rank, select
from twin_lib.settings import EmbeddingSettings, RetrievalSettings, WeaviateSettings
from twin_lib.storage import SearchHit, StorageError, VectorStore, chunk_collection_schema

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _candidate(hit: SearchHit) -> Candidate:
    properties = hit.properties
    return Candidate(
        chunk=RetrievedChunk(
            chunk_id=hit.uuid,
            document_id=str(properties.get("document_id") or ""),
            content=str(properties.get("content") or ""),
            title=str(properties.get("title") or ""),
            source_url=str(properties.get("source_url") or ""),
            content_hash=str(properties.get("content_hash") or ""),
            score=float(hit.score or 0.0),
        ),
        vector=hit.vector or [],
    )


def merge(searches: list[list[SearchHit]]) -> list[SearchHit]:
    """Hits of every search, each chunk once with its best fused score, best first."""
    best: dict[str, SearchHit] = {}
    for hits in searches:
        for hit in hits:
            known = best.get(hit.uuid)
            if known is None or (hit.score or 0.0) > (known.score or 0.0):
                best[hit.uuid] = hit
    return sorted(best.values(), key=lambda h: -(h.score or 0.0))


class WeaviateRetriever:
    """Retrieves from one collection for one author; one Weaviate connection, reused."""

    def __init__(
        self,
        weaviate: WeaviateSettings,
        embedding: EmbeddingSettings,
        retrieval: RetrievalSettings,
        *,
        collection: str,
        author: str,
        rewriter: QueryRewriter | None = None,
    ) -> None:
        self.embedding = embedding
        self.retrieval = retrieval
        self.author = author
        self.rewriter = rewriter
        self.schema = chunk_collection_schema(collection, embedding.dimensions)
        self.store = VectorStore(weaviate)
        if not self.store.collection_exists(collection):
            self.store.close()
            raise StorageError(
                f"Weaviate at {weaviate.endpoint_label} has no collection {collection!r} to "
                f"retrieve {author}'s chunks from: run the feature pipeline for {author} first"
            )
        self.model = load_model(embedding.model, embedding.device, embedding.revision)
        self.reranker = make_reranker(retrieval, embedding.device)
        self._authors: list[str] | None = None
        if (retrieval.query_expansion or retrieval.self_query) and rewriter is None:
            logger.warning(
                "query expansion / self-query are set but no rewriter was given; searching "
                "with the question alone"
            )

    def close(self) -> None:
        self.store.close()

    def known_authors(self) -> list[str]:
        """Authors with chunks in the collection, the twin's own first (read once)."""
        if self._authors is None:
            counts = self.store.value_counts(self.schema, "author")
            self._authors = [self.author, *sorted(a for a in counts if a != self.author)]
        return self._authors

    def _rewritten(self, what: str, call: Callable[[], T], fallback: T) -> T:
        """An optional rewrite: if the generator fails, retrieval goes on without it."""
        try:
            return call()
        except Exception as error:  # a rewrite only widens the search; never fail an answer
            logger.warning("query %s failed; going on without it: %s", what, error)
            return fallback

    def _author_for(self, question: str) -> str:
        if not (self.retrieval.self_query and self.rewriter):
            return self.author
        rewriter = self.rewriter
        named = self._rewritten(
            "self-query", lambda: rewriter.author_in(question, self.known_authors()), None
        )
        return named or self.author

    def _queries(self, question: str) -> list[str]:
        queries = [question]
        if self.retrieval.query_expansion and self.rewriter:
            rewriter, n = self.rewriter, self.retrieval.query_expansion
            queries += self._rewritten("expansion", lambda: rewriter.expand(question, n), [])
        cleaned = [clean_text(q, Category.ARTICLE) for q in queries]
        return list(dict.fromkeys(q for q in cleaned if q))

    def retrieve(self, question: str) -> list[RetrievedChunk]:
        started = time.perf_counter()
        if not clean_text(question, Category.ARTICLE):
            logger.info("question is empty after cleaning; nothing to retrieve")
            return []
        author = self._author_for(question)
        queries = self._queries(question)
        rewritten = time.perf_counter()
        vectors = embed_texts(queries, self.model, self.embedding)
        embedded = time.perf_counter()
        searches = [
            self.store.hybrid(
                self.schema,
                query,
                vector,
                alpha=self.retrieval.alpha,
                limit=self.retrieval.candidates,
                filters={"author": author},
                include_vector=True,
            )
            for query, vector in zip(queries, vectors, strict=True)
        ]
        searched = time.perf_counter()
        candidates = [_candidate(hit) for hit in merge(searches)]
        scores = self.reranker.scores(queries[0], vectors[0], candidates)
        ranked = deduplicate(rank(candidates, scores))
        chunks = select(ranked, self.retrieval)
        done = time.perf_counter()
        logger.info(
            "retrieved",
            extra={
                "author": author,
                "queries": len(queries),
                "candidates": len(candidates),
                "unique": len(ranked),
                "chunks": len(chunks),
                "reranker": self.reranker.name,
                "rewrite_ms": round((rewritten - started) * 1000, 1),
                "embed_ms": round((embedded - rewritten) * 1000, 1),
                "search_ms": round((searched - embedded) * 1000, 1),
                "rerank_ms": round((done - searched) * 1000, 1),
                "retrieval_ms": round((done - started) * 1000, 1),
            },
        )
        return chunks
