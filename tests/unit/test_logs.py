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
