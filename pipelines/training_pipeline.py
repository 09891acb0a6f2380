"""The training pipeline: base model -> instruction dataset -> preference dataset -> train ->
register.

The datasets are validated inside their steps (Great Expectations, quarantine, HTML report);
training runs on the launcher the ``training`` parameter names (local torchrun, PyTorchJob or
TrainJob) and writes straight into the model version it reserved; registration records the
candidate with lineage back to the source URLs. Run it locally with
``twin pipeline run training --local --param author=NAME`` or submit the compiled
``training_pipeline.yaml``; regenerate it with ``python -m pipelines.training_pipeline``.
"""

from pathlib import Path
from typing import Any

from kfp import compiler, dsl

from components import training as steps
from pipelines.platform import for_cluster
from twin_lib.k8s.pipelines import rebuild
from twin_lib.settings import DatasetSettings, TrainingSettings, load_settings

COMPILED = Path(__file__).with_suffix(".yaml")
# KFP parameters cannot hold null: unset optional settings are left out and keep their default.
DATASET_DEFAULTS: dict = DatasetSettings().model_dump(mode="json", exclude_none=True)
# The compiled pipeline runs on a cluster, so its default trains with a PyTorchJob; a local run
# (`twin pipeline run training --local`) passes the settings' training group (torchrun here).
TRAINING_DEFAULTS: dict = TrainingSettings(launcher="pytorchjob").model_dump(
    mode="json", exclude_none=True
)


def training_tasks(
    author: Any,
    model_name: Any,
    datasets: Any,
    training: Any,
    *,
    after: dsl.PipelineTask | None = None,
) -> dsl.PipelineTask:
    """Add the training steps to the pipeline being built; returns the register task, whose
    output is the registered version. ``after``: the task that must finish before the
    author's chunks are read (the feature pipeline's load, in ``llm_twin``).
    """
    kfp = load_settings().kfp
    base = for_cluster(steps.base_model(training=training), kfp_settings=kfp)
    instruction = for_cluster(
        steps.instruction_dataset(
            author=author, datasets=datasets, base_model=base.outputs["Output"]
        ),
        kfp_settings=kfp,
    )
    if after is not None:
        instruction.after(after)
    preference = for_cluster(
        steps.preference_dataset(
            instruction_snapshot=instruction.outputs["Output"],
            datasets=datasets,
            base_model=base.outputs["Output"],
        ),
        kfp_settings=kfp,
    )
    trained = for_cluster(
        steps.train(
            training=training,
            base_model=base.outputs["Output"],
            instruction_snapshot=instruction.outputs["Output"],
            preference_snapshot=preference.outputs["Output"],
            model_name=model_name,
        ),
        kfp_settings=kfp,
    )
    return for_cluster(steps.register(run=trained.outputs["config"]), kfp_settings=kfp)


@dsl.pipeline(
    name="training-pipeline",
    description="Turn an author's chunks in the feature store into instruction and preference "
    "datasets, fine-tune a base model with LoRA (SFT, then DPO) and register the candidate.",
)
def training_pipeline(
    author: str,
    model_name: str = "twin",
    datasets: dict = DATASET_DEFAULTS,
    training: dict = TRAINING_DEFAULTS,
) -> None:
    training_tasks(author, model_name, datasets, training)


def compile_pipeline(path: Path = COMPILED) -> Path:
    compiler.Compiler().compile(rebuild(training_pipeline), str(path))
    return path


if __name__ == "__main__":
    print(compile_pipeline())
