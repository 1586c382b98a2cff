"""RUN/run.json: what ran, where and when — one entry per training session (the first run and every resume)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ..io import write_json
from ..version import __version__


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def git_commit(where: Path | None = None) -> str | None:
    """The commit of the git checkout the command runs in (the user's project), or None outside one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


class RunRecord:
    """Appends a session to RUN/run.json when training starts and completes it when training stops."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / "run.json"
        self.sessions: list[dict[str, Any]] = []
        if self.path.is_file():
            try:
                sessions = json.loads(self.path.read_text()).get("sessions", [])
                self.sessions = [s for s in sessions if isinstance(s, dict)]
            except (ValueError, AttributeError, TypeError):
                self.sessions = []  # unreadable: start the record again rather than fail the run

    def start(self, device: torch.device, step: int, processes: int = 1, launch: str | None = None,
              precision: str = "fp32") -> None:
        """A new session: `processes` of a data-parallel run (torchrun job `launch`) or one, its nets' forward passes
        in `precision` (what train.precision=auto chose on this machine)."""
        self.sessions.append({
            "gankit": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "device": str(device), "precision": precision,
            "threads": torch.get_num_threads(),
            "argv": list(sys.argv), "git_commit": git_commit(), "start": _now(), "end": None,
            "from_step": step, "to_step": None, "status": "running", "processes": processes,
            **({"launch": launch} if launch else {})})
        self._write()

    def end(self, step: int, status: str) -> None:
        self.sessions[-1].update(end=_now(), to_step=step, status=status)
        self._write()

    def _write(self) -> None:
        write_json(self.path, {"sessions": self.sessions})
