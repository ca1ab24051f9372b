"""A project's ``code`` folder as an archive, read as its owner could read it and no further.

The folder is written by its owner's workspace, so every name in it is hostile: a link may point at another
user's files, and a folder may be swapped for a link while the archive is written.  Files are listed without
following links (links, fifos, sockets and devices are skipped), then each is opened one path component at
a time from a descriptor of the code folder, with ``O_NOFOLLOW`` at every step, so that what is read is
always beneath it.  (``openat2``'s ``RESOLVE_BENEATH`` would do this in one call; Python does not expose it.)
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import LibraryError

MAX_FILES = 20_000
MAX_BYTES = 2 * 1024**3


def code_files(code: Path) -> list[tuple[str, str, int]]:
    """``[name, name, size]`` for :func:`~..streaming.send_archive`: the regular files beneath *code* (a
    project's code or model folder)."""
    if code.is_symlink() or not code.is_dir():
        raise LibraryError(404, "no-project", f"You have no such project, or its {code.name} folder is missing.",
                           "project")
    found, total = [], 0
    for folder, dirs, files in os.walk(code, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not (Path(folder) / d).is_symlink())
        for name in sorted(files):
            path = Path(folder) / name
            try:
                info = path.lstat()
            except FileNotFoundError:  # removed since the folder was read
                continue
            if not stat.S_ISREG(info.st_mode):
                continue  # a link, a fifo, a socket: not the project's code
            relative = path.relative_to(code).as_posix()
            found.append((relative, relative, info.st_size))
            total += info.st_size
            if len(found) > MAX_FILES or total > MAX_BYTES:
                raise LibraryError(413, "too-large", f"the {code.name} folder holds more than {MAX_FILES} files or "
                                   f"{MAX_BYTES // 1024**3} GiB; download it from the workspace (JupyterLab or "
                                   "git) instead", "project")
    return found


def open_beneath(code: Path, relative: str):
    """*relative* under *code*, opened for reading without following any link on the way."""
    parts = relative.split("/")
    fd = os.open(code, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):  # swapped for a fifo since it was listed
        os.close(file_fd)
        raise OSError(f"{relative} is no longer a regular file")
    os.set_blocking(file_fd, True)
    return os.fdopen(file_fd, "rb")
