"""The model registry: versioned models with metadata and status history in MinIO."""

from twin_lib.registry.models import (
    IllegalTransitionError,
    ModelStatus,
    ModelVersion,
    StatusChange,
)
from twin_lib.registry.store import (
    ModelRegistry,
    RegistryError,
    Reservation,
    register_candidate,
    reserve_version,
)

__all__ = [
    "IllegalTransitionError",
    "ModelRegistry",
    "ModelStatus",
    "ModelVersion",
    "RegistryError",
    "Reservation",
    "StatusChange",
    "register_candidate",
    "reserve_version",
]
