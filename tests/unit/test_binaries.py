import stat
from pathlib import Path

import pytest

from twin_lib.settings import StackSettings
from twin_lib.stack.binaries import (
    StackError,
    binary_specs,
    build_binary,
    cached_binary_path,
    resolve_binary,
)


@pytest.fixture
def minio_spec():
    return binary_specs(StackSettings())["minio"]


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho fake\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_explicit_binary_must_be_executable(tmp_path: Path, minio_spec):
    not_executable = tmp_path / "minio"
    not_executable.write_text("")
    with pytest.raises(StackError, match="TWIN_STACK__MINIO_BINARY"):
        resolve_binary(minio_spec, not_executable, tmp_path / "cache")


def test_binary_on_path_wins_over_cache(tmp_path: Path, minio_spec, monkeypatch):
    on_path = _executable(tmp_path / "bin" / "minio")
    _executable(cached_binary_path(minio_spec, tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert resolve_binary(minio_spec, None, tmp_path / "cache") == on_path


def test_cached_binary_is_reused_without_building(tmp_path: Path, minio_spec, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    cached = _executable(cached_binary_path(minio_spec, tmp_path / "cache"))
    assert resolve_binary(minio_spec, None, tmp_path / "cache", allow_build=False) == cached


def test_missing_binary_without_build_says_how_to_get_it(tmp_path: Path, minio_spec, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(StackError, match="twin stack install"):
        resolve_binary(minio_spec, None, tmp_path / "cache", allow_build=False)


def test_missing_go_explains_the_alternatives(tmp_path: Path, minio_spec, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(StackError) as error:
        build_binary(minio_spec, tmp_path / "cache")
    message = str(error.value)
    assert "Go is not on PATH" in message
    assert "source scripts/setup.sh" in message
    assert "TWIN_STACK__MINIO_BINARY" in message


def test_failed_go_build_reports_go_output_and_leaves_no_partial_cache(tmp_path: Path):
    spec = binary_specs(StackSettings(minio_module_version="bad version"))["minio"]
    with pytest.raises(StackError, match="invalid version"):
        build_binary(spec, tmp_path / "cache")
    assert not any((tmp_path / "cache" / "bin").iterdir())


def test_build_progress_is_logged_with_structured_fields(tmp_path: Path, caplog):
    spec = binary_specs(StackSettings(minio_module_version="bad version"))["minio"]
    with caplog.at_level("INFO"), pytest.raises(StackError):
        build_binary(spec, tmp_path / "cache")
    started = next(r for r in caplog.records if "building server binary" in r.getMessage())
    assert started.go_module == "github.com/minio/minio@bad version"
