"""docs/design.md's worked examples (a variant, a data kind, a metric, a CLI command) run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gankit.data import KINDS
from gankit.report import RUN_METRICS
from gankit.variants import VARIANTS

DOC = Path(__file__).resolve().parents[1] / "docs" / "design.md"


@pytest.fixture
def clean_registries():
    """The examples register a variant, a kind, a metric and a command: remove them afterwards."""
    from gankit.cli import app

    before = (dict(VARIANTS), dict(KINDS), dict(RUN_METRICS), list(app.registered_commands))
    yield
    for registry, saved in zip((VARIANTS, KINDS, RUN_METRICS), before):
        registry.clear()
        registry.update(saved)
    app.registered_commands[:] = before[3]


def test_worked_examples_run(tmp_path, monkeypatch, clean_registries):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 4
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - the project's own documentation
    assert "lsgan_abc" in VARIANTS and "points_csv" in KINDS and "center_distance" in RUN_METRICS
