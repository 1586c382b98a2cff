"""Docs that are generated from code must match the code."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_is_up_to_date():
    rendered = subprocess.run([sys.executable, str(ROOT / "scripts" / "config_reference.py")], capture_output=True,
                              text=True, check=True).stdout
    assert (ROOT / "docs" / "configuration.md").read_text() == rendered, \
        "run: python scripts/config_reference.py > docs/configuration.md"
