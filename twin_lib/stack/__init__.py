"""The local development stack: real MinIO and Weaviate servers as local processes."""

from twin_lib.stack.binaries import StackError
from twin_lib.stack.supervisor import SERVICES, LocalStack, ServiceStatus

__all__ = ["SERVICES", "LocalStack", "ServiceStatus", "StackError"]
