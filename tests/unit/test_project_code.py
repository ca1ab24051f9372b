"""A project's code folder as a download: only regular files beneath it, whatever its owner put there."""

import os

import pytest

from workspace_library.projects.code import code_files, open_beneath


def test_links_fifos_and_folders_swapped_for_links_are_never_read(tmp_path):
    code, other = tmp_path / "code", tmp_path / "someone-else"
    (code / "src").mkdir(parents=True)
    other.mkdir()
    (code / "src" / "train.py").write_text("print(1)\n")
    (other / "train.py").write_text("another user's secret\n")
    (code / "secret").symlink_to(other / "train.py")
    (code / "theirs").symlink_to(other)
    os.mkfifo(code / "pipe")
    assert code_files(code) == [("src/train.py", "src/train.py", 9)]
    with open_beneath(code, "src/train.py") as f:
        assert f.read() == b"print(1)\n"
    # listed, then the folder is swapped for a link to another user's folder before it is read
    (code / "src" / "train.py").unlink()
    (code / "src").rmdir()
    (code / "src").symlink_to(other)
    with pytest.raises(OSError):
        open_beneath(code, "src/train.py")
    # or the file for a link, or a fifo (which would hang a reader)
    (code / "src").unlink()
    (code / "src").mkdir()
    (code / "src" / "train.py").symlink_to(other / "train.py")
    with pytest.raises(OSError):
        open_beneath(code, "src/train.py")
    (code / "src" / "train.py").unlink()
    os.mkfifo(code / "src" / "train.py")
    with pytest.raises(OSError, match="no longer a regular file"):
        open_beneath(code, "src/train.py")
