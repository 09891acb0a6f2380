"""Command output prints endpoints, paths and server errors exactly as they are.

rich reads ``[word]`` as a style tag: an IPv6 endpoint such as ``http://[fd00::2]:9000``
lost its host in an error message, and ``:name:`` became an emoji.
"""

from __future__ import annotations

import pytest

from twin_lib.cli.context import console, show, summary

TEXTS = [
    "MinIO is not reachable at http://[fd00::2]:9000 (Connection refused)",
    "Weaviate at http://[::1]:8080 and s3://bucket/[draft]/key.json",
    "state in /tmp/:smile:/[bold]x[/bold]",
]


@pytest.mark.parametrize("text", TEXTS)
def test_summary_prints_the_message_as_written(text: str):
    with console.capture() as captured:
        summary(text, ok=False)
    assert captured.get() == f"✘ {text}\n"


@pytest.mark.parametrize("text", TEXTS)
def test_show_prints_data_as_written(text: str):
    with console.capture() as captured:
        show(text)
    assert captured.get() == f"{text}\n"


def test_a_long_summary_stays_on_one_line():
    text = "MinIO is not reachable at http://127.0.0.1:9000 " + "x" * 400
    with console.capture() as captured:
        summary(text)
    assert captured.get().count("\n") == 1
