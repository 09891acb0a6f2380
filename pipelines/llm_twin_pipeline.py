"""The whole loop up to the gate: features -> datasets -> training -> evaluation -> review.

``llm_twin`` adds the feature pipeline's and the training pipeline's own tasks (their
``feature_tasks`` and ``training_tasks``, so the three pipelines cannot drift apart), then
evaluates the registered candidate against its base and asks for reviews. KFP has no
approval step, so the run ends there; the ``promote`` pipeline decides and deploys later.
Run it with ``twin pipeline run llm_twin --local --source URL --author NAME``; regenerate
the compiled YAML with ``python -m pipelines.llm_twin_pipeline`` (a test fails when stale).
"""

from pathlib import Path

from kfp import compiler, dsl

from components.evaluation import evaluate_model
from components.promotion import request_review
from pipelines.feature_pipeline import FEATURE_DEFAULTS, feature_tasks
from pipelines.platform import for_cluster
from pipelines.training_pipeline import DATASET_DEFAULTS, TRAINING_DEFAULTS, training_tasks
from twin_lib.k8s.pipelines import rebuild
from twin_lib.settings import load_settings

COMPILED = Path(__file__).with_suffix(".yaml")


@dsl.pipeline(
    name="llm-twin",
    description="From an author's sources to a reviewed candidate: crawl, validate and load "
    "the features, build the datasets, fine-tune and register, evaluate the candidate "
    "against its base model and request reviews; the promote pipeline deploys it.",
)
def llm_twin(
    sources: list,
    author: str,
    model_name: str = "twin",
    review_backend: str = "",
    features: dict = FEATURE_DEFAULTS,
    datasets: dict = DATASET_DEFAULTS,
    training: dict = TRAINING_DEFAULTS,
) -> None:
    kfp = load_settings().kfp
    loaded = feature_tasks(sources, author, features)
    registered = training_tasks(author, model_name, datasets, training, after=loaded)
    evaluated = for_cluster(
        evaluate_model(version=registered.outputs["Output"], model_name=model_name),
        kfp_settings=kfp,
    )
    for_cluster(
        request_review(
            version=evaluated.outputs["Output"],
            model_name=model_name,
            review_backend=review_backend,
        ),
        kfp_settings=kfp,
    )


def compile_pipeline(path: Path = COMPILED) -> Path:
    compiler.Compiler().compile(rebuild(llm_twin), str(path))
    return path


if __name__ == "__main__":
    print(compile_pipeline())
