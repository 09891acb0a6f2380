from pathlib import Path

import pytest

from twin_lib.settings import TwinSettings, load_settings, to_env


def test_nested_environment_variables_configure_each_group(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TWIN_MINIO__ENDPOINT", "minio.example:9000")
    monkeypatch.setenv("TWIN_MINIO__SECURE", "true")
    monkeypatch.setenv("TWIN_WEAVIATE__GRPC_PORT", "6000")
    monkeypatch.setenv("TWIN_KUBERNETES__NAMESPACE", "twin-prod")
    settings = load_settings()
    assert settings.minio.url == "https://minio.example:9000"
    assert settings.weaviate.grpc_endpoint == "127.0.0.1:6000"
    assert settings.kubernetes.namespace == "twin-prod"


def test_secrets_never_appear_in_reprs_or_dumps(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TWIN_MINIO__SECRET_KEY", "super-secret-value")
    monkeypatch.setenv("TWIN_WEAVIATE__API_KEY", "another-secret")
    settings = load_settings()
    rendered = repr(settings) + settings.model_dump_json()
    assert "super-secret-value" not in rendered
    assert "another-secret" not in rendered
    assert settings.minio.secret_key.get_secret_value() == "super-secret-value"


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / ".env").write_text("TWIN_ARGILLA__URL=http://argilla.internal:6900\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings().argilla.url == "http://argilla.internal:6900"


def test_explicit_overrides_win_over_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TWIN_LOG_LEVEL", "DEBUG")
    assert load_settings(log_level="WARNING").log_level == "WARNING"


def test_weaviate_without_api_key_is_allowed(monkeypatch: pytest.MonkeyPatch):
    assert TwinSettings(_env_file=None, weaviate={"api_key": None}).weaviate.api_key is None


def test_to_env_round_trips_through_the_environment(monkeypatch: pytest.MonkeyPatch):
    original = TwinSettings(
        _env_file=None,
        minio={"endpoint": "10.0.0.1:9000", "secret_key": "s3cret", "secure": True},
        weaviate={"api_key": None, "grpc_port": 7000},
        stack={"state_dir": "/srv/twin"},
    )
    for key, value in to_env(original).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TWIN_WEAVIATE__API_KEY", raising=False)
    restored = load_settings()
    assert restored.minio.endpoint == "10.0.0.1:9000"
    assert restored.minio.secret_key.get_secret_value() == "s3cret"
    assert restored.minio.secure is True
    assert restored.weaviate.grpc_port == 7000
    assert restored.stack.state_dir == Path("/srv/twin")
