"""The feature pipeline: crawl -> validate -> plan -> clean -> chunk -> embed -> validate -> load.

Run it locally with ``twin pipeline run feature --local`` or submit the compiled
``feature_pipeline.yaml``. Regenerate the YAML with ``python -m pipelines.feature_pipeline``;
a test fails when the checked-in file is stale. Every task goes through
``pipelines.platform.for_cluster`` (endpoints, credentials, image, caching, resources, retries).
"""

from pathlib import Path
from typing import Any

from kfp import compiler, dsl

from components import features as steps
from pipelines.platform import for_cluster
from twin_lib.k8s.pipelines import rebuild
from twin_lib.settings import FeaturesSettings, load_settings

COMPILED = Path(__file__).with_suffix(".yaml")
# KFP parameters cannot hold null: unset optional settings are left out and keep their default.
FEATURE_DEFAULTS: dict = FeaturesSettings().model_dump(mode="json", exclude_none=True)


def feature_tasks(sources: Any, author: Any, features: Any) -> dsl.PipelineTask:
    """Add the feature steps to the pipeline being built; returns the load task, after which
    the feature store holds the author's chunks (``llm_twin`` chains training after it).

    The arguments are the calling pipeline's parameters (or constants).
    """
    kfp = load_settings().kfp
    crawled = for_cluster(
        steps.crawl(sources=sources, author=author, features=features), kfp_settings=kfp
    )
    validated = for_cluster(
        steps.validate_documents(features=features, raw_documents=crawled.outputs["raw_documents"]),
        kfp_settings=kfp,
    )
    planned = for_cluster(
        steps.plan_sync(
            features=features,
            complete_origins=crawled.outputs["Output"],
            raw_documents=crawled.outputs["raw_documents"],
            valid_documents=validated.outputs["valid_documents"],
        ),
        kfp_settings=kfp,
    )
    cleaned = for_cluster(
        steps.clean(documents=planned.outputs["changed_documents"]), kfp_settings=kfp
    )
    chunked = for_cluster(
        steps.chunk(features=features, cleaned_documents=cleaned.outputs["cleaned_documents"]),
        kfp_settings=kfp,
    )
    embedded = for_cluster(
        steps.embed(features=features, chunks=chunked.outputs["chunks"]), kfp_settings=kfp
    )
    checked = for_cluster(
        steps.validate_chunks(
            features=features, embedded_chunks=embedded.outputs["embedded_chunks"]
        ),
        kfp_settings=kfp,
    )
    return for_cluster(
        steps.load(
            features=features,
            valid_chunks=checked.outputs["valid_chunks"],
            plan=planned.outputs["plan"],
        ),
        kfp_settings=kfp,
    )


@dsl.pipeline(
    name="feature-pipeline",
    description="Crawl an author's writing into the raw lake, validate it with Great "
    "Expectations, and load cleaned, chunked, embedded text into Weaviate.",
)
def feature_pipeline(sources: list, author: str, features: dict = FEATURE_DEFAULTS) -> None:
    feature_tasks(sources, author, features)


def compile_pipeline(path: Path = COMPILED) -> Path:
    compiler.Compiler().compile(rebuild(feature_pipeline), str(path))
    return path


if __name__ == "__main__":
    print(compile_pipeline())
