"""Run logs: one JSON object per logged step in logs.jsonl, and a rich progress bar with the live numbers."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..errors import UserError
from ..io import json_text, write_bytes
from ..variants import LogKeys, variant_class

log = logging.getLogger("gankit")


class JsonlLog:
    """Append-only logs.jsonl; on resume, lines after the checkpoint's step are dropped (they are re-done). Each line
    is standard JSON: a value that was not finite (NaN, ±inf) is written as null, which `read_logs` reads as NaN."""

    def __init__(self, path: Path, resume_step: int | None = None) -> None:
        self.path = path
        if resume_step is not None and path.exists():
            kept = [line for line in path.read_text().splitlines() if _step_of(line) <= resume_step]
            write_bytes(path, "".join(line + "\n" for line in kept).encode())
        self._file = open(path, "a", buffering=1)  # line-buffered: a killed run loses at most the current line

    def write(self, record: dict[str, Any]) -> None:
        """One record, stamped with the wall-clock time (`time`, seconds since the epoch) when it has none."""
        self._file.write(json_text({**record, "time": record.get("time", round(time.time(), 3))}) + "\n")

    def close(self) -> None:
        self._file.close()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _step_of(line: str) -> float:
    """A line's step; lines that are no record (a torn last line from a killed run, a hand edit) count as after
    every step, so a resume drops them."""
    try:
        record = json.loads(line)
    except ValueError:
        return math.inf
    step = record.get("step", math.inf) if isinstance(record, dict) else math.inf
    return step if _is_number(step) else math.inf


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def summary_writer() -> type:
    """torch's SummaryWriter, or a UserError saying how to install what it needs."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("train.tensorboard=true needs the tensorboard package",
                        "pip install 'gankit[tensorboard]', or set train.tensorboard=false") from None
    return SummaryWriter


class TensorBoardLog:
    """The same records and progress pictures for TensorBoard, in RUN/tensorboard/ (one events file per session)."""

    def __init__(self, run_dir: Path) -> None:
        self._writer = summary_writer()(str(Path(run_dir) / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        """Every finite number of a training record as a scalar at its step (events are left to logs.jsonl)."""
        if "event" in record:
            return
        for key, value in record.items():
            if key not in ("step", "time") and isinstance(value, (int, float)) and math.isfinite(value):
                self._writer.add_scalar(key, value, record["step"], walltime=record.get("time"))
        self._writer.flush()

    def picture(self, path: Path, step: int) -> None:
        """A progress picture (the PNG the data kind drew) under the tag `samples`."""
        import numpy as np
        from PIL import Image

        with Image.open(path) as img:
            self._writer.add_image("samples", np.asarray(img.convert("RGB")), step, dataformats="HWC")
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def read_logs(path: Path) -> list[dict[str, Any]]:
    """All parseable records of a logs.jsonl (a torn last line is ignored), null values (numbers that were not
    finite) read as NaN. Logs of older versions hold NaN / Infinity literally, which json reads as well."""
    if not path.exists():
        return []
    out, foreign = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or not _is_number(record.get("step")):
            foreign += 1
            continue
        out.append({k: math.nan if v is None else v for k, v in record.items()})
    if foreign:
        log.warning("%s: %d line(s) that are not training records (a step number) skipped", path, foreign)
    return out


def run_log_keys(run_dir: Path) -> LogKeys:
    """The log keys of a run's variant (read from RUN/config.yaml); the defaults when the run or variant is unknown."""
    import yaml

    try:
        name = yaml.safe_load((Path(run_dir) / "config.yaml").read_text()).get("variant")
        return variant_class(str(name)).log_keys if name else LogKeys()
    except (OSError, ValueError, AttributeError, yaml.YAMLError, UserError):
        return LogKeys()


def fmt_record(record: dict[str, Any], keys: LogKeys) -> str:
    """The few numbers worth watching, for the progress bar: losses and mean D outputs."""
    names = {keys.d_loss: "D", keys.g_loss: "G", keys.d_real: "D(x)", keys.d_fake: "D(G(z))"}
    return "  ".join(f"{label} {record[k]:.3f}" for k, label in names.items() if k in record)


class ProgressBar:
    """Steps done / total, the latest losses, it/s and ETA on stderr; a no-op when disabled."""

    def __init__(self, total: int, start: int, keys: LogKeys, enabled: bool = True) -> None:
        self.enabled, self.keys = enabled, keys
        if not enabled:
            return
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=Console(stderr=True),
        )
        self.task = self.progress.add_task("train", total=total, completed=start, stats="", rate="")
        self.progress.start()

    def advance(self, steps: int = 1) -> None:
        if self.enabled:
            self.progress.update(self.task, advance=steps)

    def show(self, record: dict[str, Any]) -> None:
        if self.enabled:
            rate = f"{record['it_s']:.1f} it/s" if "it_s" in record else ""
            self.progress.update(self.task, stats=fmt_record(record, self.keys), rate=rate)

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
