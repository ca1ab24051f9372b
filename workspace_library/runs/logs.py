"""A run's log and metrics, in files under ``<data root>/library/runs/<key>/`` that outlive its container.

``log``            every line the container printed, in order (stdout and stderr), appended as it arrives
``metrics.jsonl``  one JSON object per metric line, as it arrives: ``{"line": n, "epoch": 1, "loss": 0.4}``

A *metric line* is a line the training prints in the form the handbook
(section 4) documents, SageMaker-style but fixed, so no regex is configured::

    metric: epoch=1 loss=0.4213 accuracy=0.88

Names are letters, digits and ``_``; values are numbers.  Lines that do not
parse are ordinary log lines.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

METRIC = re.compile(r"^metric:((?:\s+[A-Za-z_][A-Za-z0-9_]{0,39}=[-+0-9.eE]{1,32})+)\s*$")
PAIR = re.compile(r"([A-Za-z_][A-Za-z0-9_]{0,39})=([-+0-9.eE]{1,32})")
MAX_POINTS = 100_000  # a run that prints more metric lines keeps its log, not more points


def parse_metric(line: str) -> dict | None:
    """``metric: epoch=1 loss=0.4`` as ``{"epoch": 1, "loss": 0.4}``; None for any other line."""
    match = METRIC.match(line)
    if not match:
        return None
    values = {}
    for name, raw in PAIR.findall(match.group(1)):
        try:
            value = float(raw)
        except ValueError:
            return None
        values[name] = int(value) if value.is_integer() and "." not in raw and "e" not in raw.lower() else value
    return values


class RunFiles:
    """The log and metric files of one run."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.log = folder / "log"
        self.metrics = folder / "metrics.jsonl"
        self.model = folder / "model"

    def create(self) -> None:
        self.model.mkdir(parents=True, exist_ok=True)
        self.model.chmod(0o777)  # the image's user, whatever its uid, writes here
        self.log.touch()

    def lines(self) -> int:
        """Complete lines in the log (a restarted watcher skips that many of the container's)."""
        try:
            with open(self.log, "rb") as f:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        except FileNotFoundError:
            return 0

    def append(self, lines: list[str], first: int) -> None:
        """Append *lines* (numbered from *first*), and their metric lines to ``metrics.jsonl``."""
        points = []
        for number, line in enumerate(lines, first):
            values = parse_metric(line)
            if values:
                points.append(json.dumps({"line": number, **values}))
        with open(self.log, "a", encoding="utf-8", errors="replace") as f:
            f.write("".join(line + "\n" for line in lines))
        if points and first < MAX_POINTS:
            with open(self.metrics, "a") as f:
                f.write("".join(p + "\n" for p in points))

    def points(self) -> list[dict]:
        try:
            return [json.loads(line) for line in self.metrics.read_text().splitlines() if line]
        except FileNotFoundError:
            return []

    def read_from(self, line: int, limit: int = 1000) -> list[str]:
        """Up to *limit* log lines starting at line *line* (0-based), for a reader resuming there."""
        out = []
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                for number, text in enumerate(f):
                    if number >= line + limit:
                        break
                    if number >= line and text.endswith("\n"):
                        out.append(text[:-1])
        except FileNotFoundError:
            pass
        return out
