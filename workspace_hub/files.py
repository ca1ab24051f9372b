"""Secrets on disk: created private (0600) in one step, never written first and restricted after."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, data: bytes) -> bool:
    """Create *path* with mode 0600 holding *data*; return False (and write nothing) if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    with open(fd, "wb") as f:
        f.write(data)
    return True
