"""The two pipelines that close the loop, read from their compiled YAML: ``llm-twin`` chains
the feature and training pipelines' own tasks into evaluation and the review request, and
``promote`` deploys only under the gate's approve outcome. Caching, retries, resources and
the injected environment of every task are checked with the other pipelines
(tests/features/test_pipeline_definition.py)."""

from __future__ import annotations

from typing import Any

import yaml

from pipelines import feature_pipeline, llm_twin_pipeline, promote_pipeline, training_pipeline
from tests.support.pipeline_specs import dag_tasks


def spec(module: Any) -> dict[str, Any]:
    return next(yaml.safe_load_all(module.COMPILED.read_text()))


def upstream(pipeline_spec: dict[str, Any]) -> dict[str, set[str]]:
    return {
        name: set(task.get("dependentTasks", [])) for name, task in dag_tasks(pipeline_spec).items()
    }


def test_llm_twin_runs_features_then_training_then_evaluation_then_review():
    edges = upstream(spec(llm_twin_pipeline))
    assert len(edges) == 15
    assert "load" in edges["instruction-dataset"]
    assert edges["base-model"] == set()  # the base model is built while features load
    assert edges["evaluate-model"] == {"register"}
    assert edges["request-review"] == {"evaluate-model"}


def test_llm_twin_reuses_the_feature_and_training_tasks_unchanged():
    """The same task names, components, executors and edges as in their own pipelines; the
    only addition is training waiting for the feature load."""
    combined = spec(llm_twin_pipeline)
    combined_edges = upstream(combined)
    for module in (feature_pipeline, training_pipeline):
        own = spec(module)
        for name, task in dag_tasks(own).items():
            component = task["componentRef"]["name"]
            assert combined["components"][component] == own["components"][component], name
            executor = own["components"][component]["executorLabel"]
            assert (
                combined["deploymentSpec"]["executors"][executor]
                == own["deploymentSpec"]["executors"][executor]
            ), name
            assert combined_edges[name] - {"load"} == upstream(own)[name], name


def test_promote_deploys_only_inside_the_approve_condition():
    compiled = spec(promote_pipeline)
    components = compiled["components"]
    root = compiled["root"]["dag"]["tasks"]
    assert set(root) == {"decide-promotion", "deploy-if-approved"}
    gated = root["deploy-if-approved"]
    assert gated["cachingOptions"] == {}  # never from cache: the outcome changes per run
    arguments = gated["inputs"]["parameters"]
    assert arguments["outcome"]["taskOutputParameter"] == {
        "outputParameterKey": "outcome",
        "producerTask": "decide-promotion",
    }
    assert arguments["version"]["taskOutputParameter"]["outputParameterKey"] == "version"
    inner = components[gated["componentRef"]["name"]]["dag"]["tasks"]
    [condition] = inner.values()
    # A condition on the inner pipeline's own input: KFP local execution resolves it.
    assert condition["triggerPolicy"]["condition"] == (
        "inputs.parameter_values['pipelinechannel--outcome'] == 'approve'"
    )
    inside = components[condition["componentRef"]["name"]]["dag"]["tasks"]
    assert set(inside) == {"deploy-model"}
    deploy = inside["deploy-model"]["inputs"]["parameters"]
    assert deploy["version"]["componentInputParameter"] == "pipelinechannel--version"
    assert deploy["target"]["componentInputParameter"] == "pipelinechannel--deploy_target"


def test_promote_takes_version_model_backend_and_target():
    parameters = spec(promote_pipeline)["root"]["inputDefinitions"]["parameters"]
    assert set(parameters) == {"version", "model_name", "review_backend", "deploy_target"}
    assert all(p["defaultValue"] == "" for p in parameters.values())
