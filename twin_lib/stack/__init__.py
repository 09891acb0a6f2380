"""The local development stack: real MinIO and Weaviate servers (and, on request, Argilla
with its search engine and Redis) as local processes."""

from twin_lib.stack.binaries import StackError
from twin_lib.stack.supervisor import (
    ALL_SERVICES,
    ARGILLA_SERVICES,
    SERVICES,
    LocalStack,
    ServiceStatus,
)

__all__ = [
    "ALL_SERVICES",
    "ARGILLA_SERVICES",
    "SERVICES",
    "LocalStack",
    "ServiceStatus",
    "StackError",
]
