"""A training run folder as the page shows it: the records of log.jsonl (read incrementally: the run may be
writing it) and the snapshot grids (reals.png, fakes<kimg>.png), served by listed name only."""
from __future__ import annotations

import json
import math
import re
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

LOG_NAME = "log.jsonl"
SNAPSHOT = re.compile(r"(?:reals|fakes(\d+))\.png")


def _finite(value: Any) -> Any:
    """NaN/Inf (valid in the run's JSON lines, not in strict JSON) become None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


class RunView:
    """log.jsonl's records, re-read only past what was read before (a shorter file: read again from the start)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._records: List[Dict[str, Any]] = []
        self._offset = 0
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.run_dir.resolve().name

    def records(self, since: int = 0) -> List[Dict[str, Any]]:
        """The records after the first `since`; a partly written last line waits for the next call."""
        path = self.run_dir / LOG_NAME
        with self._lock:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size < self._offset:  # the log was replaced
                self._records, self._offset = [], 0
            if size > self._offset:
                with open(path, "rb") as f:
                    f.seek(self._offset)
                    data = f.read(size - self._offset)
                complete = data[:data.rfind(b"\n") + 1]
                for line in complete.splitlines():
                    if line.strip():
                        try:
                            record = json.loads(line)
                        except ValueError:
                            continue  # a damaged line is skipped, not fatal to the view
                        if isinstance(record, dict):
                            self._records.append(_finite(record))
                self._offset += len(complete)
            return self._records[since:]

    def snapshots(self) -> List[Dict[str, Any]]:
        """[{"name", "kimg"}] of the snapshot grids, reals first, then fakes by kimg (kimg None for reals)."""
        found = []
        for path in self.run_dir.iterdir():
            match = SNAPSHOT.fullmatch(path.name)
            if match and path.is_file():
                found.append({"name": path.name, "kimg": None if match.group(1) is None else int(match.group(1))})
        return sorted(found, key=lambda s: -1 if s["kimg"] is None else s["kimg"])

    def snapshot_path(self, name: str) -> Optional[Path]:
        """The file of a listed snapshot name; None for any other name (so no path can be asked for)."""
        for snapshot in self.snapshots():
            if snapshot["name"] == name:
                return self.run_dir / name
        return None


__all__ = ["RunView", "LOG_NAME"]
