"""The model registry: versioned models with metadata and status history in MinIO.

Import from ``twin_lib.registry.models`` (the metadata, light) or ``twin_lib.registry.store``
(the MinIO-backed registry); this package imports neither, so the CLI starts fast.
"""
