"""The feature pipeline: crawl -> validate -> plan -> clean -> chunk -> embed -> validate -> load.

Run it locally with ``twin pipeline run feature --local`` or submit the compiled
``feature_pipeline.yaml``. Regenerate the YAML with ``python -m pipelines.feature_pipeline``;
a test fails when the checked-in file is stale.
"""

from pathlib import Path

from kfp import compiler, dsl

from components import features as steps
from twin_lib.settings import FeaturesSettings

COMPILED = Path(__file__).with_suffix(".yaml")
FEATURE_DEFAULTS: dict = FeaturesSettings().model_dump(mode="json")


@dsl.pipeline(
    name="feature-pipeline",
    description="Crawl an author's writing into the raw lake, validate it with Great "
    "Expectations, and load cleaned, chunked, embedded text into Weaviate.",
)
def feature_pipeline(sources: list, author: str, features: dict = FEATURE_DEFAULTS) -> None:
    crawled = steps.crawl(sources=sources, author=author, features=features)
    validated = steps.validate_documents(
        features=features, raw_documents=crawled.outputs["raw_documents"]
    )
    planned = steps.plan_sync(
        features=features,
        crawled_origins=crawled.outputs["Output"],
        raw_documents=crawled.outputs["raw_documents"],
        valid_documents=validated.outputs["valid_documents"],
    )
    cleaned = steps.clean(documents=planned.outputs["changed_documents"])
    chunked = steps.chunk(features=features, cleaned_documents=cleaned.outputs["cleaned_documents"])
    embedded = steps.embed(features=features, chunks=chunked.outputs["chunks"])
    checked = steps.validate_chunks(
        features=features, embedded_chunks=embedded.outputs["embedded_chunks"]
    )
    steps.load(
        features=features,
        valid_chunks=checked.outputs["valid_chunks"],
        plan=planned.outputs["plan"],
    )


def compile_pipeline(path: Path = COMPILED) -> Path:
    compiler.Compiler().compile(feature_pipeline, str(path))
    return path


if __name__ == "__main__":
    print(compile_pipeline())
