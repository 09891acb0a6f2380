"""Deploying a registry version to this machine's model server (``twin serve``).

The local target keeps the cluster's rules: ``deploy_version`` has already refused anything
not approved, and the registry records the same way (deployment events; the version becomes
deployed, the one it replaced approved again, kept for rollback). There is one local server,
so there is no canary: the running server is stopped, the version is started pinned to its
weights, and it must answer the smoke question over REST. If it does not, it is stopped and
the server that ran before is started again on the same version, so a failed rollout leaves
the machine serving what it served.
"""

from __future__ import annotations

import logging

from twin_lib.registry.models import DeploymentAction, ModelStatus, ModelVersion
from twin_lib.serving.contracts import ServedModel
from twin_lib.settings import TwinSettings
from twin_lib.stack.model_server import LocalModelServer, ModelServerRecord
from twin_lib.steps.deploy import DeploymentError, DeploymentResult, Ledger, ask_smoke
from twin_lib.steps.serving import (
    FeatureVersionMismatchError,
    ModelNotServableError,
    resolve_served_model,
)

log = logging.getLogger(__name__)

# Deployment events name where a version ran; locally that is the stack, not a namespace.
LOCAL_NAMESPACE = "local"


def _served(
    settings: TwinSettings, model: ModelVersion, record: ModelServerRecord | None = None
) -> ServedModel:
    """``model`` resolved for serving (weights downloaded, lineage checked); with ``record``,
    the weights the previous server already had on disk."""
    pinned = settings.model_copy(deep=True)
    pinned.serving.model_name = model.name
    pinned.serving.version = model.version
    return resolve_served_model(pinned, model_dir=record.model_dir if record else None)


def _pinned(record: ModelServerRecord) -> tuple[str, str]:
    """The registry model and version a running server was pinned to (its name/version)."""
    name, _, version = record.model.rpartition("/")
    return name, version


def _replaced_label(before: ModelServerRecord, model: ModelVersion) -> str:
    """What the running server serves, as a version of ``model``'s name or as name/version."""
    name, version = _pinned(before)
    return version if name == model.name else before.model


class _LocalRollout(Ledger):
    def __init__(self, settings: TwinSettings, model_name: str, by: str) -> None:
        super().__init__(
            settings, model_name, by, isvc=settings.serving.served_name, namespace=LOCAL_NAMESPACE
        )
        self.server = LocalModelServer(settings)

    def deployed_others(self, model: ModelVersion) -> list[str]:
        """Other versions of the model the registry holds as deployed: they go back to
        approved once ``model`` serves (one server, one deployed version)."""
        return [
            found.version
            for found in self.registry.list_versions(model.name)
            if found.version != model.version and found.status == ModelStatus.DEPLOYED
        ]

    def start(self, served: ServedModel) -> str:
        """Serve ``served`` and return its URL; raises when it never becomes ready."""
        return self.server.up(served).url

    def restore(self, before: ModelServerRecord | None) -> str:
        """Bring back the server that ran before; says what serves now."""
        if before is None:
            return "nothing served before, and nothing serves now"
        try:
            previous = self.registry.get(*_pinned(before))
            url = self.start(_served(self.settings, previous, before))
        except Exception as error:  # reported in the rollout's own error
            log.error("previous model server not restored", extra={"model": before.model})
            return (
                f"{before.model} could not be started again either ({error}); start it with "
                f"`twin serve up --version {_pinned(before)[1]}`"
            )
        log.warning("previous model server restored", extra={"model": before.model, "url": url})
        return f"{before.model} serves again at {url}"


def deploy_locally(settings: TwinSettings, model: ModelVersion, *, by: str) -> DeploymentResult:
    """Serve the approved ``model`` from this machine's model server (see the module)."""
    rollout = _LocalRollout(settings, model.name, by)
    try:
        served = _served(settings, model)
    except (ModelNotServableError, FeatureVersionMismatchError) as error:
        raise DeploymentError(f"{model.name} {model.version} was not deployed: {error}") from error
    before = rollout.server.running()
    if before is not None and before.model == served.label:
        raise DeploymentError(
            f"the local model server at {before.url} already serves {served.label}"
        )
    replaced = rollout.deployed_others(model)
    previous = _replaced_label(before, model) if before else (replaced[0] if replaced else None)
    log.info("deploying locally", extra={"model": served.label, "replaces": previous, "by": by})
    if before is not None:
        rollout.server.down()
    try:
        url = rollout.start(served)
        answer = ask_smoke(settings, model, url, served_name=settings.serving.served_name)
    except Exception as error:
        rollout.server.down()
        serving_now = rollout.restore(before)
        rollout.record(model, DeploymentAction.FAILED, f"{error}; {serving_now}", None)
        raise DeploymentError(
            f"{model.name} {model.version} failed on the local model server: {error}. "
            f"{serving_now}; the version stays approved"
        ) from error
    action = DeploymentAction.PROMOTED if previous else DeploymentAction.CREATED
    reason = f"local model server at {url}" + (f"; replaces {previous}" if previous else "")
    rollout.record(model, action, reason, None)
    rollout.mark_deployed(model, f"{reason}; smoke question answered")
    for version in replaced:
        rollout.supersede(
            version, model.version, f"superseded by {model.version}; kept for rollback"
        )
    return rollout.result(model, action, previous=previous, answer=answer.text, endpoint=url)
