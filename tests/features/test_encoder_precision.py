"""The bf16 encoder: used where the processor has bf16 units, versioned apart from fp32,
and finding the same neighbours as fp32 on real text."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin_lib.demo.corpus import load_chapters
from twin_lib.features.embedding import embed_texts, resolve_precision
from twin_lib.features.recall import neighbour_recall
from twin_lib.features.version import encoder_identity, feature_version
from twin_lib.hardware import choose_precision, cpu_bf16_support
from twin_lib.settings import EmbeddingSettings, FeaturesSettings

BF16_UNITS, WHY = cpu_bf16_support()
needs_bf16 = pytest.mark.skipif(not BF16_UNITS, reason=f"no bf16 matrix units here: {WHY}")


def features_at(precision: str) -> FeaturesSettings:
    return FeaturesSettings(embedding=EmbeddingSettings(precision=precision))


def test_auto_follows_the_hardware_and_forced_bf16_without_units_is_refused(
    tmp_path: Path,
) -> None:
    assert resolve_precision("auto", "cpu") == ("bf16" if BF16_UNITS else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="set precision to 'auto' or 'fp32'"):
        choose_precision("bf16", False, "no units")


@needs_bf16
def test_bf16_and_fp32_encoders_have_different_feature_versions() -> None:
    bf16, fp32 = features_at("bf16"), features_at("fp32")
    assert feature_version(bf16) != feature_version(fp32)
    assert encoder_identity(bf16.embedding) != encoder_identity(fp32.embedding)
    assert feature_version(features_at("auto")) == feature_version(bf16)


@needs_bf16
def test_bf16_finds_the_fp32_neighbours_of_real_verses(embedding_model) -> None:
    verses = [
        verse.strip() + "."
        for chapter in load_chapters(12)
        for verse in chapter["text"].split(". ")
        if len(verse.split()) > 8
    ][:120]
    reference = embed_texts(verses, embedding_model, EmbeddingSettings(precision="fp32"))
    candidate = embed_texts(verses, embedding_model, EmbeddingSettings(precision="bf16"))
    assert reference != candidate  # bf16 really ran: the vectors moved
    assert neighbour_recall(reference, candidate, k=10) >= 0.99
