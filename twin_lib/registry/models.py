"""What the registry records about a model version, and which status changes are allowed.

A version moves candidate -> approved -> deployed, or ends rejected / retired; every change
is kept with who or what decided it, when and why, so a deployed model's path is auditable.
A deployed version that a newer one replaces (or that is rolled back) returns to approved:
it may be deployed again, which is what a rollback does. Every rollout step on the cluster
(canary, promotion, removal) is kept beside the status history as a deployment event.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class ModelStatus(StrEnum):
    CANDIDATE = "candidate"
    APPROVED = "approved"
    DEPLOYED = "deployed"
    REJECTED = "rejected"
    RETIRED = "retired"


# Rejected and retired are final: a model that comes back is trained and registered again.
TRANSITIONS: dict[ModelStatus, frozenset[ModelStatus]] = {
    ModelStatus.CANDIDATE: frozenset({ModelStatus.APPROVED, ModelStatus.REJECTED}),
    ModelStatus.APPROVED: frozenset(
        {ModelStatus.DEPLOYED, ModelStatus.REJECTED, ModelStatus.RETIRED}
    ),
    ModelStatus.DEPLOYED: frozenset({ModelStatus.APPROVED, ModelStatus.RETIRED}),
    ModelStatus.REJECTED: frozenset(),
    ModelStatus.RETIRED: frozenset(),
}


class IllegalTransitionError(ValueError):
    """A status change the lifecycle does not allow."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class StatusChange(BaseModel):
    """One recorded decision."""

    status: ModelStatus
    previous: ModelStatus | None = None
    by: str = Field(description="the person, pipeline step or system that decided")
    at: datetime = Field(default_factory=utc_now)
    reason: str


class DeploymentAction(StrEnum):
    CREATED = "created"
    CANARY = "canary"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"


class DeploymentEvent(BaseModel):
    """One step of a rollout of this version to an InferenceService."""

    action: DeploymentAction
    isvc: str
    namespace: str
    traffic_percent: int | None = Field(default=None, description="the canary's share")
    by: str
    reason: str
    at: datetime = Field(default_factory=utc_now)


class CodeVersion(BaseModel):
    """Which code trained the model."""

    package: str
    version: str
    git_commit: str | None = None


class ModelVersion(BaseModel):
    """``registry/<name>/<version>/metadata.json``."""

    name: str
    version: str
    status: ModelStatus = ModelStatus.CANDIDATE
    history: list[StatusChange]
    created: datetime = Field(default_factory=utc_now)
    base_model: str
    dataset_snapshots: dict[str, str] = Field(
        description="dataset kind (instruction, preference) -> snapshot id"
    )
    hyperparameters: dict[str, Any] = Field(description="the TrainingConfig, as trained")
    code: CodeVersion
    metrics: dict[str, Any] = Field(default_factory=dict, description="the run's metrics.json")
    precision: str | None = None
    output_uri: str
    adapter_uri: str
    merged_uri: str
    launch: dict[str, Any] = Field(
        default_factory=dict, description="where and how it ran (backend, job name, duration)"
    )
    deployments: list[DeploymentEvent] = Field(default_factory=list)
    evaluation: dict[str, Any] = Field(
        default_factory=dict,
        description="the latest evaluation against the base model: headline figures and "
        "where its evaluation.json and evaluation.html are",
    )

    def was_deployed(self) -> bool:
        return any(change.status == ModelStatus.DEPLOYED for change in self.history)

    def changed(self, status: ModelStatus, *, by: str, reason: str) -> ModelVersion:
        """This version with ``status`` appended to its history; refuses illegal moves."""
        if status not in TRANSITIONS[self.status]:
            allowed = ", ".join(sorted(TRANSITIONS[self.status])) or "none (final status)"
            raise IllegalTransitionError(
                f"{self.name} {self.version} is {self.status}; it cannot become {status} "
                f"(allowed from {self.status}: {allowed})"
            )
        if not reason.strip() or not by.strip():
            raise ValueError(f"a status change of {self.name} {self.version} needs who and why")
        change = StatusChange(status=status, previous=self.status, by=by, reason=reason)
        return self.model_copy(update={"status": status, "history": [*self.history, change]})
