"""Deploying a registry version to KServe: create, or canary -> check -> promote; rollback.

Only an approved version is ever deployed, and the check happens before anything is sent
to the cluster. The first version creates the InferenceService. Every later one goes out as
a canary of the running version, must be ready within the timeout and answer the smoke
question through its own predictor Service (the InferenceService's URL splits traffic, so
an answer there may come from the old version; the answer's model version is compared when
the server reports it), and is then promoted. On any failure the canary is removed and the
running version keeps serving. The registry records each step as a deployment event, and
the statuses follow: the new version becomes deployed, the one it replaced approved again
("kept for rollback"); a failed rollout leaves the version approved.

With ``serving.deployment.target: local`` the same rules and records apply to this
machine's ``twin serve`` process instead (``twin_lib.steps.local_deploy``).
"""

from __future__ import annotations

import logging
import time

from kubernetes.client import ApiClient
from pydantic import BaseModel, Field

from twin_lib.k8s.inference_service import (
    Body,
    InferenceServices,
    canary_names,
    canary_patch,
    inference_service,
    predictor_name,
    promote_patch,
    remove_canary_patch,
    restore_patch,
    service_name,
)
from twin_lib.k8s.training_jobs import api_client
from twin_lib.registry.models import DeploymentAction, DeploymentEvent, ModelStatus, ModelVersion
from twin_lib.registry.store import ModelRegistry
from twin_lib.serving.client import ClientAnswer, TwinClient, TwinClientError
from twin_lib.settings import TwinSettings
from twin_lib.storage.errors import ObjectNotFoundError

log = logging.getLogger(__name__)


class DeploymentError(RuntimeError):
    """A rollout did not happen or was undone; the message says what serves now."""


class NotDeployableError(DeploymentError):
    """The version is not approved: nothing was sent to the cluster."""


class DeploymentResult(BaseModel):
    """What a deploy or rollback did, for the CLI, the KFP component and logs."""

    model: str
    version: str
    action: DeploymentAction
    isvc: str
    namespace: str
    previous: str | None = None
    traffic_percent: int | None = None
    answer: str | None = None
    endpoint: str | None = Field(default=None, description="where it answers (local target)")
    duration_s: float

    def markdown(self) -> str:
        where = (
            f"- local model server: {self.endpoint}"
            if self.endpoint
            else f"- InferenceService: `{self.namespace}/{self.isvc}`"
        )
        lines = [
            f"## {self.model} {self.version}: {self.action}",
            "",
            where,
            f"- replaced: {self.previous or 'nothing (first deployment)'}",
            f"- canary traffic while checked: {self.traffic_percent}%"
            if self.traffic_percent is not None
            else "- no canary",
            f"- took {self.duration_s:.0f}s",
        ]
        if self.answer is not None:
            lines += ["", "Smoke answer:", "", f"> {self.answer.strip()[:500]}"]
        return "\n".join(lines) + "\n"


def deployment_namespace(settings: TwinSettings) -> str:
    return settings.serving.deployment.namespace or settings.kubernetes.namespace


def _model_name(settings: TwinSettings, name: str | None) -> str:
    return name or settings.serving.model_name or settings.registry.default_model


def _services(settings: TwinSettings, api: ApiClient | None) -> InferenceServices:
    return InferenceServices(
        api or api_client(settings.kubernetes),
        deployment_namespace(settings),
        timeout_s=settings.serving.deployment.api_timeout_s,
    )


def check_deployable(model: ModelVersion) -> None:
    if model.status != ModelStatus.APPROVED:
        raise NotDeployableError(
            f"{model.name} {model.version} is {model.status}: only an approved version is "
            f"deployed (`twin models show {model.name} {model.version}` shows its history; "
            f"after review: `twin models status {model.name} {model.version} approved "
            "--by NAME --reason WHY`)"
        )


def smoke(settings: TwinSettings, model: ModelVersion) -> ClientAnswer:
    """Ask the version's own predictor Service the smoke question; an answer with text from
    this very version passes, anything else raises :class:`DeploymentError`."""
    deployment = settings.serving.deployment
    try:
        url = deployment.smoke_url.format(
            service=service_name(deployment.isvc_name, model.version),
            namespace=deployment_namespace(settings),
        )
    except (KeyError, IndexError, ValueError) as error:
        raise DeploymentError(
            f"serving.deployment.smoke_url {deployment.smoke_url!r} is not a valid template: "
            f"use only {{service}} and {{namespace}} ({error!r})"
        ) from error
    return ask_smoke(settings, model, url, served_name=deployment.isvc_name)


def ask_smoke(
    settings: TwinSettings, model: ModelVersion, url: str, *, served_name: str
) -> ClientAnswer:
    """The smoke question to the server at ``url``, which must answer as ``model``."""
    deployment = settings.serving.deployment
    label = f"{model.name}/{model.version}"
    try:
        with TwinClient(url, model=served_name, timeout_s=deployment.smoke_timeout_s) as client:
            answer = client.ask(deployment.smoke_question)
    except TwinClientError as error:
        raise DeploymentError(f"smoke question to {label} failed: {error}") from error
    if not answer.text.strip():
        raise DeploymentError(f"smoke question to {label} at {url} got an empty answer")
    if answer.model_version and answer.model_version != label:
        raise DeploymentError(
            f"smoke question at {url} was answered by {answer.model_version}, not {label}"
        )
    log.info("smoke question answered", extra={"model": label, "answer_id": answer.id})
    return answer


class Ledger:
    """The registry side of a rollout, whatever serves the version: deployment events, the
    version becoming deployed and the one it replaced going back to approved."""

    def __init__(
        self, settings: TwinSettings, model_name: str, by: str, *, isvc: str, namespace: str
    ) -> None:
        self.settings = settings
        self.deployment = settings.serving.deployment
        self.registry = ModelRegistry(settings.minio, settings.registry)
        self.model_name = model_name
        self.by = by
        self.isvc = isvc
        self.namespace = namespace
        self.started = time.monotonic()

    def record(
        self, model: ModelVersion, action: DeploymentAction, reason: str, percent: int | None
    ) -> None:
        event = DeploymentEvent(
            action=action,
            isvc=self.isvc,
            namespace=self.namespace,
            traffic_percent=percent,
            by=self.by,
            reason=reason,
        )
        self.registry.record_deployment(model.name, model.version, event)

    def result(
        self, model: ModelVersion, action: DeploymentAction, **fields: object
    ) -> DeploymentResult:
        return DeploymentResult(
            model=model.name,
            version=model.version,
            action=action,
            isvc=self.isvc,
            namespace=self.namespace,
            duration_s=time.monotonic() - self.started,
            **fields,  # type: ignore[arg-type]
        )

    def mark_deployed(self, model: ModelVersion, reason: str) -> None:
        self.registry.transition(
            model.name, model.version, ModelStatus.DEPLOYED, by=self.by, reason=reason
        )

    def supersede(self, version: str, by_version: str, reason: str) -> None:
        """The version that served before goes back to approved, if the registry has it
        as deployed (it may have been retired by hand meanwhile)."""
        try:
            previous = self.registry.get(self.model_name, version)
        except ObjectNotFoundError:
            log.warning("replaced version not in the registry", extra={"version": version})
            return
        if previous.status == ModelStatus.DEPLOYED:
            self.registry.transition(
                previous.name, previous.version, ModelStatus.APPROVED, by=self.by, reason=reason
            )
        else:
            log.warning(
                "replaced version was not recorded as deployed",
                extra={"version": version, "status": str(previous.status), "by": by_version},
            )


class _Rollout(Ledger):
    """One deploy or rollback on the cluster: the InferenceService and the registry."""

    def __init__(
        self, settings: TwinSettings, services: InferenceServices, model_name: str, by: str
    ) -> None:
        deployment = settings.serving.deployment
        super().__init__(
            settings, model_name, by, isvc=deployment.isvc_name, namespace=services.namespace
        )
        self.services = services

    @property
    def where(self) -> str:
        return self.services.where(self.isvc)

    def serving(self, existing: Body) -> str:
        """The version the predictor serves; refuses a service the deployer did not make."""
        current = predictor_name(existing)
        if not current:
            raise DeploymentError(
                f"{self.where} has an unnamed predictor, so it was not created by the deployer "
                "(an older static manifest?); it cannot be rolled out by version. Delete it "
                f"(`kubectl delete isvc -n {self.services.namespace} {self.isvc}`) and deploy "
                "an approved version again"
            )
        return current

    def wait_and_smoke(self, model: ModelVersion, *, canary: bool) -> ClientAnswer:
        self.services.wait_ready(
            self.isvc,
            model.version,
            canary=canary,
            timeout_s=self.deployment.ready_timeout_s,
            poll_s=self.deployment.poll_interval_s,
        )
        return smoke(self.settings, model)

    # -- deploy ------------------------------------------------------------------------

    def create(self, model: ModelVersion) -> DeploymentResult:
        body = inference_service(self.deployment, self.services.namespace, model)
        self.services.create(body)
        self.record(model, DeploymentAction.CREATED, "first deployment", None)
        try:
            answer = self.wait_and_smoke(model, canary=False)
        except Exception as error:
            self.record(model, DeploymentAction.FAILED, str(error), None)
            raise DeploymentError(
                f"{self.where} was created for {model.version} but it does not serve: {error}. "
                "Nothing served before; fix the cause and deploy again, or delete it "
                f"(`kubectl delete isvc -n {self.services.namespace} {self.isvc}`)"
            ) from error
        self.mark_deployed(model, f"first predictor of {self.where}; smoke question answered")
        return self.result(model, DeploymentAction.CREATED, answer=answer.text)

    def canary(self, model: ModelVersion, current: str, percent: int) -> DeploymentResult:
        self.services.patch(self.isvc, canary_patch(self.deployment, current, model, percent))
        self.record(model, DeploymentAction.CANARY, f"canary of {current}", percent)
        try:
            answer = self.wait_and_smoke(model, canary=True)
        except Exception as error:
            self.remove_canary(model, current, str(error), percent)
            raise DeploymentError(
                f"{model.version} failed its canary check on {self.where}: {error}. The canary "
                f"was removed; {current} keeps serving"
            ) from error
        self.services.patch(self.isvc, promote_patch(self.deployment, model))
        self.record(model, DeploymentAction.PROMOTED, f"replaces {current}", percent)
        self.mark_deployed(
            model, f"promoted from canary ({percent}% traffic) on {self.where}; replaces {current}"
        )
        self.supersede(current, model.version, f"superseded by {model.version}; kept for rollback")
        return self.result(
            model,
            DeploymentAction.PROMOTED,
            previous=current,
            traffic_percent=percent,
            answer=answer.text,
        )

    def remove_canary(
        self, model: ModelVersion, current: str, reason: str, percent: int | None
    ) -> None:
        found = self.services.get(self.isvc)
        if found is not None and model.version in canary_names(found):
            self.services.patch(self.isvc, remove_canary_patch(model.version))
        self.record(model, DeploymentAction.ROLLED_BACK, reason, percent)
        log.warning(
            "canary removed",
            extra={"isvc": self.where, "version": model.version, "serving": current},
        )

    # -- rollback ----------------------------------------------------------------------

    def previous_deployed(self, current: str) -> ModelVersion:
        """The approved version that served most recently before ``current``."""
        earlier = [
            v
            for v in self.registry.list_versions(self.model_name)
            if v.version != current and v.status == ModelStatus.APPROVED and v.was_deployed()
        ]
        if not earlier:
            raise DeploymentError(
                f"{self.where} serves {current} and no earlier deployed version of "
                f"{self.model_name} is approved to go back to (see `twin models list`)"
            )
        return max(earlier, key=lambda v: v.history[-1].at)


def deploy_version(
    settings: TwinSettings,
    version: str,
    *,
    by: str,
    name: str | None = None,
    canary_percent: int | None = None,
    api: ApiClient | None = None,
) -> DeploymentResult:
    """Roll ``version`` out (see the module docstring); raises :class:`DeploymentError`
    when it does not end up serving, after putting the previous state back."""
    model = ModelRegistry(settings.minio, settings.registry).get(
        _model_name(settings, name), version
    )
    check_deployable(model)
    deployment = settings.serving.deployment
    if deployment.target == "local":
        from twin_lib.steps.local_deploy import deploy_locally

        return deploy_locally(settings, model, by=by)
    percent = deployment.canary_percent if canary_percent is None else canary_percent
    rollout = _Rollout(settings, _services(settings, api), model.name, by)
    existing = rollout.services.get(rollout.isvc)
    log.info(
        "deploying",
        extra={"model": f"{model.name}/{model.version}", "isvc": rollout.where, "by": by},
    )
    if existing is None:
        return rollout.create(model)
    current = rollout.serving(existing)
    if current == model.version:
        raise DeploymentError(f"{rollout.where} already serves {model.version}")
    if canary_names(existing):
        raise DeploymentError(
            f"{rollout.where} is already rolling out {', '.join(canary_names(existing))}; wait "
            "for it, or remove that canary with `twin rollback`"
        )
    return rollout.canary(model, current, percent)


def rollback(
    settings: TwinSettings, *, by: str, name: str | None = None, api: ApiClient | None = None
) -> DeploymentResult:
    """Remove a canary in progress; otherwise serve the previously deployed version again
    (checked like a rollout: ready, then the smoke question)."""
    if settings.serving.deployment.target == "local":
        raise DeploymentError(
            "rollback acts on the cluster's InferenceService, and serving.deployment.target "
            "is local: deploy the earlier approved version instead (`twin deploy VERSION`; "
            "`twin models list` shows which versions are approved)"
        )
    rollout = _Rollout(settings, _services(settings, api), _model_name(settings, name), by)
    existing = rollout.services.get(rollout.isvc)
    if existing is None:
        raise DeploymentError(f"{rollout.where} does not exist: nothing to roll back")
    current = rollout.serving(existing)
    registry = rollout.registry
    canaries = canary_names(existing)
    if canaries:
        model = registry.get(rollout.model_name, canaries[0])
        rollout.remove_canary(model, current, f"rollback requested by {by}", None)
        return rollout.result(model, DeploymentAction.ROLLED_BACK, previous=current)
    target = rollout.previous_deployed(current)
    rollout.services.patch(rollout.isvc, restore_patch(rollout.deployment, current, target))
    answer = rollout.wait_and_smoke(target, canary=False)
    rolled_back = registry.get(rollout.model_name, current)
    rollout.record(rolled_back, DeploymentAction.ROLLED_BACK, f"{target.version} restored", None)
    rollout.record(target, DeploymentAction.PROMOTED, f"rollback from {current}", None)
    rollout.mark_deployed(target, f"rollback from {current} on {rollout.where}")
    rollout.supersede(current, target.version, f"rolled back to {target.version}")
    return rollout.result(target, DeploymentAction.PROMOTED, previous=current, answer=answer.text)
