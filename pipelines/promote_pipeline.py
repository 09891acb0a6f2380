"""The gate's second half: decide on a candidate, and deploy it only when approved.

``decide_promotion`` reads the evidence (the evaluation against the base, the reviews of the
chosen backend), records approve or reject in the registry and returns the outcome; the
deploy task sits inside ``dsl.If(outcome == "approve")`` (in the small ``deploy-if-approved``
pipeline), so a rejected, waiting or absent candidate is never deployed. It runs on a
schedule (``manifests/runs/promote``: a CronJob every hour, plus an on-demand Job in
``manifests/runs/promote-now``) or locally with ``twin pipeline run promote --local``.
Regenerate the compiled YAML with ``python -m pipelines.promote_pipeline``.
"""

from pathlib import Path

from kfp import compiler, dsl

from components.promotion import decide_promotion
from components.serving import deploy_model
from pipelines.platform import for_cluster
from twin_lib.k8s.pipelines import rebuild
from twin_lib.settings import load_settings

COMPILED = Path(__file__).with_suffix(".yaml")


@dsl.pipeline(
    name="deploy-if-approved",
    description="Deploy the version when the gate's outcome is approve; otherwise nothing.",
)
def deploy_if_approved(outcome: str, version: str, model_name: str, deploy_target: str) -> None:
    """Its own small pipeline, so the condition tests this pipeline's input: KFP local
    execution (2.17) cannot resolve a condition on another task's named output and would
    skip the deploy, while a cluster runs either form the same."""
    with dsl.If(outcome == "approve", name="approved"):
        for_cluster(
            deploy_model(version=version, model_name=model_name, target=deploy_target),
            kfp_settings=load_settings().kfp,
        )


@dsl.pipeline(
    name="promote",
    description="Decide on a candidate from its evaluation and reviews, record the decision "
    "in the registry, and deploy the version only when it is approved.",
)
def promote(
    version: str = "",
    model_name: str = "",
    review_backend: str = "",
    deploy_target: str = "",
) -> None:
    """Empty strings: the newest candidate, the default model, ``gate.review_backend`` and
    ``serving.deployment.target``."""
    gate = for_cluster(
        decide_promotion(version=version, model_name=model_name, review_backend=review_backend),
        kfp_settings=load_settings().kfp,
    )
    deploy_if_approved(
        outcome=gate.outputs["outcome"],
        version=gate.outputs["version"],
        model_name=model_name,
        deploy_target=deploy_target,
    ).set_caching_options(False)


def compile_pipeline(path: Path = COMPILED) -> Path:
    compiler.Compiler().compile(rebuild(promote), str(path))
    return path


if __name__ == "__main__":
    print(compile_pipeline())
