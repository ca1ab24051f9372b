"""How a run ended: the one place an engine's end becomes a state, a reason and a message.

Every backend reports the same facts (an exit code, whether the kernel killed it for memory, whether
its deadline passed, whether the engine failed it) and :func:`decide` turns them into an
:class:`Outcome`.  The reasons are one enum, stored in the database, sent by the API, shown by the
pages and printed by ``ws``.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

from ..contract import MODEL_DIR

METRICS_FILES = {"metrics.json", "metrics.jsonl"}  # what a run writes beside its model, not a model


class State(str, enum.Enum):
    succeeded = "succeeded"
    failed = "failed"
    stopped = "stopped"


class Reason(str, enum.Enum):
    """Why a run failed."""

    exit_code = "exit-code"  # the program exited non-zero
    oom = "oom"  # it used more memory than it asked for
    max_runtime = "max-runtime"  # it passed its deadline and was stopped
    no_model = "no-model"  # it exited 0 but wrote no model
    too_large = "too-large"  # it wrote more than its output may hold, and was stopped
    platform = "platform"  # the engine failed it, or it could not start


@dataclass(frozen=True)
class Outcome:
    state: State
    reason: Reason | None = None
    message: str = ""
    exit_code: int | None = None


def output_size(folder: Path, limit: int) -> int:
    """The bytes of regular files under *folder* (links not followed), counted up to just past *limit*."""
    total, pending = 0, [folder]
    while pending and total <= limit:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:  # gone, or not a folder
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
            elif entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


def wrote_model(folder: Path) -> bool:
    """Whether *folder* holds a file other than the metrics files (links are not followed)."""
    return folder.is_dir() and any(p.is_file() and not p.is_symlink() and p.name not in METRICS_FILES
                                   for p in folder.rglob("*"))


def decide(exit_code: int | None, oom: bool = False, timed_out: bool = False, stopped: bool = False,
           error: str = "", model: Path | None = None, memory: int | None = None,
           deadline: float | None = None, too_large: str = "") -> Outcome:
    """The outcome of a run that ended with *exit_code*; *model* is the folder it had to write, if any;
    *too_large* says what limit its output passed, if it was stopped for that."""
    if stopped:
        return Outcome(State.stopped, None, "stopped by a user", exit_code)
    if error:
        return Outcome(State.failed, Reason.platform, error, exit_code)
    if too_large:
        return Outcome(State.failed, Reason.too_large, f"the run wrote more than {too_large} to {MODEL_DIR} and "
                       "was stopped", exit_code)
    if oom:
        limit = f"its {memory / 1024**3:g} GB" if memory else "its limit"
        return Outcome(State.failed, Reason.oom, f"the run used more than {limit} of memory", exit_code)
    if timed_out:
        limit = f" of {deadline:.0f} s" if deadline else ""
        return Outcome(State.failed, Reason.max_runtime, f"the run passed its maximum runtime{limit} and was stopped",
                       exit_code)
    if exit_code != 0:
        return Outcome(State.failed, Reason.exit_code, f"the run exited {exit_code}", exit_code)
    if model is not None and not wrote_model(model):
        return Outcome(State.failed, Reason.no_model, f"the run exited 0 but wrote no model to {MODEL_DIR}", 0)
    return Outcome(State.succeeded, None, "", 0)
