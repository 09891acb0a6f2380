import pyarrow as pa
import pytest
from typer.testing import CliRunner

from twin_lib.cli import app
from twin_lib.settings import TwinSettings, to_env
from twin_lib.storage import ObjectStore, SnapshotStore

pytestmark = pytest.mark.integration


def test_snapshots_list_and_show(
    stack_settings: TwinSettings, object_store: ObjectStore, unique_name: str
):
    store = SnapshotStore(object_store, stack_settings.minio.raw_bucket)
    first = store.create(unique_name, pa.table({"content_hash": ["a", "b"]}), counts={"post": 2})
    second = store.create(unique_name, pa.table({"content_hash": ["c"]}), parent=first.id)
    runner = CliRunner()
    env = to_env(stack_settings)

    listed = runner.invoke(app, ["snapshots", "list", unique_name], env=env)
    assert listed.exit_code == 0, listed.output
    assert first.id in listed.output and second.id in listed.output
    assert "post=2" in listed.output
    assert f"2 snapshot(s) of {unique_name}" in listed.output

    shown = runner.invoke(app, ["snapshots", "show", second.id], env=env)
    assert shown.exit_code == 0, shown.output
    assert f'"parent": "{first.id}"' in shown.output

    missing = runner.invoke(app, ["snapshots", "show", f"{unique_name}-0000000000000000"], env=env)
    assert missing.exit_code == 1
    assert "does not exist" in missing.output
