"""init-secrets writes every env file, with the values shared between services equal."""

from __future__ import annotations

import shutil
from pathlib import Path

from dotenv import dotenv_values

from tests.k8s.conftest import MANIFESTS
from twin_lib.k8s.secrets import write_secret_files


def test_shared_credentials_agree(tmp_path: Path) -> None:
    tree = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, tree, ignore=shutil.ignore_patterns("*.env"))
    written = write_secret_files(tree)
    assert len(written) == len(list(tree.rglob("secrets/*.env.example")))
    values: dict[str, str | None] = {}
    for path in written:
        values.update(dotenv_values(path))
    assert values["TWIN_MINIO__SECRET_KEY"] == values["MINIO_ROOT_PASSWORD"]
    assert values["TWIN_WEAVIATE__API_KEY"] == values["AUTHENTICATION_APIKEY_ALLOWED_KEYS"]
    assert values["TWIN_ARGILLA__API_KEY"] == values["API_KEY"]
    assert "change-me" not in "".join(str(v) for v in values.values())
    assert write_secret_files(tree) == []
