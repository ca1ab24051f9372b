"""The hostile archive corpus: each archive is refused with its code, and nothing lands outside staging.

Every case runs through the importer's child process, as an upload does, and
then checks the whole tmp folder: the only files are the archive itself and
what the refused import left in its own staging folder (which the service removes).
"""

import zipfile
from pathlib import Path

import pytest

from harness.archives import DIR, LINK, deflate_bomb, rar, zip_archive
from workspace_library.datasets import importer
from workspace_library.datasets.archive import ArchiveLimits

OK = [("cats/1.txt", b"a cat"), ("dogs/1.txt", b"a dog")]


def zip_with_raw_name(path: Path, raw: bytes) -> Path:
    zip_archive(path, [("X" * len(raw), b"x")])
    path.write_bytes(path.read_bytes().replace(b"X" * len(raw), raw))
    return path


def raw(data: bytes):
    def build(path: Path) -> Path:
        path.write_bytes(data)
        return path
    return build


def truncated(path: Path) -> Path:
    zip_archive(path, [("cats/1.txt", bytes(range(256)) * 400)] + OK[1:], compression=zipfile.ZIP_STORED)
    path.write_bytes(path.read_bytes()[:5000])
    return path


def nested(path: Path) -> Path:
    inner = zip_archive(path.with_suffix(".inner"), OK)
    return zip_archive(path, [*OK, ("cats/more.zip", inner.read_bytes())])


CORPUS = {
    # name: (builder, code)
    "zip-slip": (lambda p: zip_archive(p, [*OK, ("../../evil.txt", b"x")]), "archive-name"),
    "zip-slip-deep": (lambda p: zip_archive(p, [*OK, ("cats/../../evil.txt", b"x")]), "archive-name"),
    "absolute-path": (lambda p: zip_archive(p, [*OK, ("/etc/cron.d/evil", b"x")]), "archive-name"),
    "drive-letter": (lambda p: zip_archive(p, [*OK, ("C:/evil.txt", b"x")]), "archive-name"),
    "backslash": (lambda p: zip_archive(p, [*OK, ("cats\\2.txt", b"x")]), "archive-name"),
    "backslash-slip": (lambda p: zip_archive(p, [*OK, ("..\\..\\evil.txt", b"x")]), "archive-name"),
    "control-char": (lambda p: zip_archive(p, [*OK, ("cats/a\nb.txt", b"x")]), "archive-name"),
    "overlong-name": (lambda p: zip_archive(p, [*OK, ("cats/" + "a" * 300, b"x")]), "archive-name"),
    "overlong-path": (lambda p: zip_archive(p, [*OK, ("/".join(["d" * 200] * 6) + "/f", b"x")]), "archive-name"),
    "not-utf8-name": (lambda p: zip_with_raw_name(p, b"cats/\xff\xfe.txt"), "archive-encoding"),
    "symlink-out": (lambda p: zip_archive(p, [*OK, ("cats/2.txt", b"../../../etc/passwd", LINK)]), "archive-link"),
    "symlink-absolute": (lambda p: zip_archive(p, [*OK, ("cats/2.txt", b"/etc/passwd", LINK)]), "archive-link"),
    "symlink-to-folder": (lambda p: zip_archive(p, [*OK, ("cats/d", b"../dogs", LINK)]), "archive-link"),
    "symlink-dangling": (lambda p: zip_archive(p, [*OK, ("cats/2.txt", b"nothing.txt", LINK)]), "archive-link"),
    "device": (lambda p: zip_archive(p, [*OK, ("cats/dev", b"", 0o020644)]), "archive-special"),
    "fifo": (lambda p: zip_archive(p, [*OK, ("cats/fifo", b"", 0o010644)]), "archive-special"),
    "duplicate": (lambda p: zip_archive(p, [*OK, ("cats/1.txt", b"again")]), "archive-duplicate"),
    "duplicate-dot": (lambda p: zip_archive(p, [*OK, ("./cats/1.txt", b"again")]), "archive-duplicate"),
    "duplicate-slashes": (lambda p: zip_archive(p, [*OK, ("cats//1.txt", b"again")]), "archive-duplicate"),
    "duplicate-unicode": (lambda p: zip_archive(p, [("cats/caf\u00e9.txt", b"1"), ("cats/cafe\u0301.txt", b"2"),
                                                     *OK[1:]]), "archive-duplicate"),
    "file-and-folder": (lambda p: zip_archive(p, [*OK, ("cats", b"x")]), "archive-duplicate"),
    "encrypted-zip": (lambda p: zip_archive(p, OK, encrypt={"cats/1.txt"}), "archive-encrypted"),
    "encrypted-rar": (lambda p: rar(p, OK, encrypt={"dogs/1.txt"}), "archive-encrypted"),
    "nested-zip": (nested, "archive-nested"),
    "nested-gzip": (lambda p: zip_archive(p, [*OK, ("cats/x.gz", b"\x1f\x8b\x08\x00rest")]), "archive-nested"),
    "truncated-zip": (truncated, "archive-corrupt"),
    "rar-bad-header": (raw(b"Rar!\x1a\x07\x00" + b"\xff" * 64), "archive-corrupt"),
    "rar-slip": (lambda p: rar(p, [*OK, ("../evil.txt", b"x")]), "archive-name"),
    "rar-symlink-out": (lambda p: rar(p, [*OK, ("cats/l", b"../../x", LINK)]), "archive-link"),
    "not-an-archive": (raw(b"just text, named .zip"), "archive-format"),
    "tar-renamed": (raw(b"a" * 257 + b"ustar" + b"\0" * 250), "archive-format"),
    "bomb-10-gib": (lambda p: deflate_bomb(p, 10), "archive-bomb"),
    "too-many-files": (lambda p: zip_archive(p, [(f"cats/{i}.txt", b"x") for i in range(30)]), "archive-too-many"),
    "too-large": (lambda p: zip_archive(p, [("cats/big.txt", b"x" * 5000)], compression=zipfile.ZIP_STORED),
                  "archive-too-large"),
}
LIMITS = ArchiveLimits(max_files=25, max_bytes=4096)  # small, so that the last two cases stay small


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_a_hostile_archive_is_refused_with_its_code(tmp_path, case):
    build, code = CORPUS[case]
    archive = build(tmp_path / "upload.zip")
    limits = ArchiveLimits() if case.startswith(("bomb", "overlong")) else LIMITS
    result = importer.run({"train": archive}, tmp_path / "staging", "dir", limits)
    split = result["splits"]["train"]
    assert (split["ok"], split["code"]) == (False, code), split
    assert "Traceback" not in split["message"] and split["message"]
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(tmp_path / "staging")
               and p.suffix not in (".zip", ".inner")]
    assert outside == []
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))


def test_the_corpus_has_at_least_30_hostile_archives():
    assert len(CORPUS) >= 30


def test_links_inside_the_archive_are_a_second_name_for_a_file(tmp_path):
    archive = zip_archive(tmp_path / "a.zip", [*OK, ("cats/same.txt", b"1.txt", LINK)])
    split = importer.run({"train": archive}, tmp_path / "s", "dir", ArchiveLimits())["splits"]["train"]
    names = {m[0]: m[3] for m in split["members"]}
    assert split["ok"] and names["cats/same.txt"] == names["cats/1.txt"]


def test_a_rar_imports_like_a_zip(tmp_path):
    archive = rar(tmp_path / "a.rar", [("cats", b"", DIR), *OK])
    split = importer.run({"train": archive}, tmp_path / "s", "dir", ArchiveLimits())["splits"]["train"]
    assert split["ok"] and split["report"]["counts"] == {"cats": 1, "dogs": 1}


def test_macos_junk_is_dropped(tmp_path):
    archive = zip_archive(tmp_path / "a.zip", [*OK, ("__MACOSX/cats/._1.txt", b"x"), ("cats/.DS_Store", b"x")])
    split = importer.run({"train": archive}, tmp_path / "s", "dir", ArchiveLimits())["splits"]["train"]
    assert split["ok"] and split["dropped"] == 2 and len(split["members"]) == 2


def test_the_importer_child_runs_in_bounded_memory(tmp_path):
    archive = zip_archive(tmp_path / "a.zip", [(f"c{i % 2}/{i}.txt", bytes(1 << 20)) for i in range(64)])
    result = importer.run({"train": archive}, tmp_path / "s", "dir", ArchiveLimits())
    assert result["splits"]["train"]["ok"] and result["peak_rss_kib"] < 128 * 1024
