"""Local secret env files for the kustomize generators, never committed.

Several services must agree on one value (MinIO's root password is also the pipeline steps'
secret key, the Weaviate and Argilla API keys are shared with their clients), so the files are
written together from one set of generated values rather than edited by hand one by one.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

logger = logging.getLogger(__name__)


def generated_values() -> dict[str, str]:
    """Fresh random credentials, keyed by the variable names the env files use."""
    minio_password = secrets.token_urlsafe(24)
    weaviate_key = secrets.token_urlsafe(24)
    argilla_key = secrets.token_urlsafe(24)
    return {
        "MINIO_ROOT_USER": "twin-admin",
        "MINIO_ROOT_PASSWORD": minio_password,
        "AWS_ACCESS_KEY_ID": "twin-model-reader",
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(24),
        "AUTHENTICATION_APIKEY_ALLOWED_KEYS": weaviate_key,
        "USERNAME": "twin-owner",
        "PASSWORD": secrets.token_urlsafe(18),
        "API_KEY": argilla_key,
        "ARGILLA_AUTH_SECRET_KEY": secrets.token_urlsafe(32),
        "POSTGRES_USER": "argilla",
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "TWIN_MINIO__ACCESS_KEY": "twin-admin",
        "TWIN_MINIO__SECRET_KEY": minio_password,
        "TWIN_WEAVIATE__API_KEY": weaviate_key,
        "TWIN_ARGILLA__API_KEY": argilla_key,
    }


def _keys(example: Path) -> list[str]:
    lines = (line.strip() for line in example.read_text().splitlines())
    return [line.split("=", 1)[0] for line in lines if line and not line.startswith("#")]


def write_secret_files(manifests: Path, overwrite: bool = False) -> list[Path]:
    """Write every ``secrets/*.env`` next to its example; existing files are kept by default."""
    values = generated_values()
    written: list[Path] = []
    for example in sorted(manifests.rglob("secrets/*.env.example")):
        target = example.with_suffix("")
        if target.exists() and not overwrite:
            logger.info("keeping existing %s", target)
            continue
        unknown = [key for key in _keys(example) if key not in values]
        if unknown:
            raise KeyError(f"{example} names {unknown}, which init-secrets does not generate")
        target.write_text("".join(f"{key}={values[key]}\n" for key in _keys(example)))
        target.chmod(0o600)
        written.append(target)
    logger.info("wrote %d secret env files", len(written))
    return written
