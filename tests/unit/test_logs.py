import json
import logging

from twin_lib.logs import JsonFormatter, KeyValueFormatter


def _record(**fields: object) -> logging.LogRecord:
    record = logging.LogRecord("twin.test", logging.INFO, __file__, 1, "stack ready", None, None)
    record.__dict__.update(fields)
    return record


def test_key_value_lines_carry_structured_fields():
    line = KeyValueFormatter().format(_record(service="minio", seconds=1.5, note="two words"))
    assert "twin.test: stack ready" in line
    assert "service=minio" in line
    assert "seconds=1.5" in line
    assert 'note="two words"' in line


def test_json_lines_parse_and_keep_fields():
    payload = json.loads(JsonFormatter().format(_record(service="weaviate", pid=42)))
    assert payload["message"] == "stack ready"
    assert payload["service"] == "weaviate"
    assert payload["pid"] == 42
    assert payload["level"] == "INFO"


def test_no_log_call_overwrites_a_log_record_attribute():
    """``extra={"name": ...}`` raises KeyError, but only when the level is enabled: a call
    that is silent in tests would crash a pipeline step logging at INFO."""
    import ast
    from pathlib import Path

    import twin_lib

    reserved = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
    offending = []
    for path in Path(twin_lib.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                    offending += [
                        f"{path.name}:{node.lineno} {key.value}"
                        for key in keyword.value.keys
                        if isinstance(key, ast.Constant) and key.value in reserved
                    ]
                elif keyword.arg == "extra" and isinstance(keyword.value, ast.Call):
                    offending.append(f"{path.name}:{node.lineno} computed extra")
    assert offending == []
