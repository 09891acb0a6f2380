"""The feature version: which encoder, chunking and cleaning produced a collection's chunks.

It is a short hash, recorded on every chunk and in the sync state, so that changing any of
its parts re-processes the documents instead of leaving chunks of two recipes side by side.
The embedding identity (model, revision, vector size, normalisation) is kept apart from it:
a collection is bound to one embedding identity for good, since vectors of two models are
not comparable, while chunking, cleaning and the encoder's precision may change under a
collection. The precision is the one resolved on the machine (``auto`` becomes bf16 or fp32),
so chunks embedded in bf16 and in fp32 carry different versions and are never mixed.
"""

from __future__ import annotations

from importlib import metadata

from twin_lib.features.cleaning import CLEANING_VERSION
from twin_lib.features.embedding import PACKAGED_MODEL, encoder_precision
from twin_lib.hashing import sha256_json
from twin_lib.settings import EmbeddingSettings, FeaturesSettings


def model_revision(settings: EmbeddingSettings) -> str:
    """The configured revision; for the packaged model, the version of its package."""
    if settings.revision:
        return settings.revision
    if settings.model == PACKAGED_MODEL:
        return metadata.version(PACKAGED_MODEL)
    return "unpinned"


def embedding_identity(settings: EmbeddingSettings) -> str:
    """What makes two vectors comparable: the same model, revision, size and normalisation."""
    return (
        f"{settings.model}@{model_revision(settings)}"
        f"/{settings.dimensions}d{'/normalized' if settings.normalize else ''}"
    )


def encoder_identity(settings: EmbeddingSettings) -> str:
    """What makes two vectors of one text equal: the embedding identity and the precision."""
    return f"{embedding_identity(settings)}/{encoder_precision(settings)}"


def feature_version(features: FeaturesSettings) -> str:
    """A short, stable id of the encoder identity, chunking spec and cleaning version."""
    recipe = {
        "embedding": embedding_identity(features.embedding),
        "precision": encoder_precision(features.embedding),
        "chunking": features.chunking.model_dump(mode="json"),
        "cleaning": CLEANING_VERSION,
    }
    return sha256_json(recipe)[:12]
