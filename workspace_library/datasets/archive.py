"""Safe extraction of an uploaded zip or rar into a staging folder, one numbered file per member.

libarchive (through libarchive-c) reads both formats and streams each member,
so memory stays flat whatever the archive holds.  Nothing here ever builds a
host path from a member's name: member *n* is written to ``<staging>/<n>``,
and the names only go into the manifest, after they pass the rules below.  So
zip-slip, absolute paths and links cannot write outside the staging folder by
construction, and the rules exist to give a clear refusal, not to guard paths.

Refused, each with a stable code (the whole archive is refused; the caller
removes the staging folder):

``archive-format``       not a zip or rar (checked by magic bytes, not the file name)
``archive-corrupt``      libarchive cannot read it (truncated, bad header, bad CRC)
``archive-encrypted``    a member is encrypted
``archive-name``         a name is absolute, has ``..``, a ``\\``, a drive letter, control characters,
                         or is longer than ``max_name_bytes`` (or a part longer than 255 bytes)
``archive-encoding``     a name is not valid UTF-8
``archive-duplicate``    two members have one name after normalisation (``./a``, ``a//b``, Unicode NFC),
                         or a name is both a file and a folder
``archive-link``         a symlink or hardlink whose target leaves the archive or is not a file in it
``archive-special``      a device, fifo or socket
``archive-nested``       a member is itself an archive (zip, rar, 7z, gzip, bzip2, xz, tar)
``archive-too-many``     more than ``max_files`` members
``archive-too-large``    more than ``max_bytes`` once extracted (counted while reading, never trusting
                         the sizes the headers declare)
``archive-bomb``         more than ``max_ratio`` bytes out per byte in, past the first 64 MiB

Links that stay inside (a hardlink or symlink to a regular file of the archive)
become a second name for the same content.  macOS's ``__MACOSX/`` and
``.DS_Store`` entries are dropped.  A well-kept library that applies such
rules does not exist for libarchive's streaming reader (``extractall`` filters
in the standard library cover tar only), hence this module.
"""

from __future__ import annotations

import ctypes
import hashlib
import posixpath
import re
import stat
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import libarchive
from libarchive import ffi

HEAD_BYTES = 512  # kept per file for the format checks (magic numbers, first line)
BOMB_GRACE = 64 << 20
NESTED_MAGIC = (b"PK\x03\x04", b"Rar!\x1a\x07", b"7z\xbc\xaf\x27\x1c", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
JUNK = re.compile(r"(^|/)(__MACOSX(/|$)|\.DS_Store$)")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_is_encrypted = ffi.ffi("entry_is_encrypted", [ffi.c_archive_entry_p], ctypes.c_int)


@dataclass(frozen=True)
class ArchiveLimits:
    """What one archive may expand to; the service's settings fill these in."""

    max_files: int = 200_000
    max_bytes: int = 20 << 30
    max_ratio: int = 200
    max_name_bytes: int = 1024


@dataclass
class Member:
    """One extracted file: its name in the dataset, its staged file, size, digest and first bytes."""

    name: str
    staged: str
    size: int
    sha256: str
    head: bytes = b""


@dataclass
class Extracted:
    """The outcome: the members (in archive order), or the refusal's code and message."""

    members: list[Member] = field(default_factory=list)
    code: str | None = None
    message: str = ""
    entry: str | None = None
    archive_bytes: int = 0
    dropped: int = 0

    @property
    def ok(self) -> bool:
        return self.code is None


class Refused(Exception):
    def __init__(self, code: str, message: str, entry: str | None = None):
        super().__init__(message)
        self.code, self.message, self.entry = code, message, entry


def archive_format(path: Path, tar_gz: bool = False) -> str:
    """zip, rar (or rar5), and with *tar_gz* (model uploads) tar.gz, by magic bytes."""
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if magic.startswith(b"Rar!\x1a\x07"):
        return "rar5" if magic == b"Rar!\x1a\x07\x01\x00" else "rar"
    if tar_gz and magic.startswith(b"\x1f\x8b"):
        return "tar.gz"
    raise Refused("archive-format", f"the file is neither a zip{', a tar.gz' if tar_gz else ''} nor a rar archive; "
                  "pack the folder as a zip and upload that")


def normalise(raw, limits: ArchiveLimits) -> str:
    """The member's name in the dataset, or :class:`Refused` with the rule it breaks."""
    if isinstance(raw, bytes):  # libarchive-c hands over bytes when the name is not valid UTF-8
        raise Refused("archive-encoding", f"the name {raw[:80]!r} is not valid UTF-8; rename the file",
                      raw.decode("utf-8", "replace"))
    shown = raw[:120]
    if "\\" in raw:
        raise Refused("archive-name", f"{shown!r} uses '\\' as a separator; pack it with '/' (zip on Windows "
                      "with 7-Zip or 'Compress-Archive' does)", shown)
    if CONTROL.search(raw):
        raise Refused("archive-name", f"{shown!r} holds a control character; rename the file", shown)
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise Refused("archive-name", f"{shown!r} is an absolute path; archive relative paths", shown)
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Refused("archive-name", f"{shown!r} contains '..'; archive the dataset's own folder", shown)
    name = unicodedata.normalize("NFC", "/".join(parts))
    if len(name.encode()) > limits.max_name_bytes or any(len(p.encode()) > 255 for p in parts):
        raise Refused("archive-name", f"{shown!r}... is too long (at most {limits.max_name_bytes} bytes, "
                      "255 a part); shorten it", shown)
    return name


def _zip_directory_check(path: Path) -> None:
    """The zip's central directory, read by :mod:`zipfile`: libarchive turns ``\\`` into ``/``, reads some
    encryption flags only when it decrypts, and reads a fifo as an empty file, so these are checked on the
    entries as stored."""
    try:
        infos = zipfile.ZipFile(path).infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise Refused("archive-corrupt", f"the zip cannot be read ({e}); create it again") from None
    for info in infos:
        if "\\" in info.filename:
            raise Refused("archive-name", f"{info.filename[:120]!r} uses '\\' as a separator; pack it with '/'",
                          info.filename[:120])
        kind = stat.S_IFMT(info.external_attr >> 16)
        if info.create_system == 3 and kind not in (0, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
            raise Refused("archive-special", f"{info.filename[:120]!r} is a device, fifo or socket; archive "
                          "regular files only", info.filename[:120])
        if info.flag_bits & 0x1:
            raise Refused("archive-encrypted", f"{info.filename[:120]!r} is encrypted; upload it without a "
                          "password", info.filename[:120])


def extract(archive: Path, staging: Path, limits: ArchiveLimits = ArchiveLimits(), tar_gz: bool = False) -> Extracted:
    """Extract *archive* into *staging* (which must be empty) under the rules above (*tar_gz*: a tar.gz is
    accepted too, for model uploads).  Never raises for bad input: the result carries the refusal.  On
    refusal the caller removes *staging*."""
    result = Extracted(archive_bytes=archive.stat().st_size)
    try:
        _extract(archive, staging, limits, result, tar_gz)
    except Refused as e:
        result.code, result.message, result.entry = e.code, e.message, e.entry
    except libarchive.ArchiveError as e:
        result.code, result.message = "archive-corrupt", f"the archive cannot be read ({e.msg}); create it again"
    return result


def _extract(archive: Path, staging: Path, limits: ArchiveLimits, result: Extracted, tar_gz: bool) -> None:
    fmt = archive_format(archive, tar_gz)
    if fmt == "zip":
        _zip_directory_check(archive)
    names: dict[str, int] = {}  # name -> index into members (files), or -1 (folders)
    links: list[tuple[str, str]] = []
    total = 0
    for n, entry in enumerate(_entries(archive, fmt)):
        if n >= limits.max_files:
            raise Refused("archive-too-many", f"the archive has more than {limits.max_files} members; split the "
                          "dataset or ask an admin to raise the limit")
        raw = entry.pathname
        if isinstance(raw, str) and JUNK.search(raw):
            result.dropped += 1
            continue
        name = normalise(raw, limits)
        if _is_encrypted(entry._entry_p):
            raise Refused("archive-encrypted", f"{name!r} is encrypted; upload it without a password", name)
        if entry.isdir:
            _claim(names, name, -1)
            continue
        if entry.issym or entry.islnk:
            target = entry.linkpath if entry.issym else entry.linkname
            links.append((name, _link_target(name, target, entry.issym, limits)))
            continue
        if not entry.isreg:
            raise Refused("archive-special", f"{name!r} is a device, fifo or socket; archive regular files only",
                          name)
        declared = total + max(entry.size or 0, 0)  # headers may lie low, never high: checked again below
        if declared > limits.max_bytes:
            raise Refused("archive-too-large", f"the archive declares more than {limits.max_bytes} bytes; split "
                          "the dataset or ask an admin to raise the limit", name)
        if declared > BOMB_GRACE and declared > limits.max_ratio * result.archive_bytes:
            raise Refused("archive-bomb", f"{name!r} declares more than {limits.max_ratio} times its compressed "
                          "size; this looks like a zip bomb", name)
        staged = str(len(result.members))
        digest, size, head = hashlib.sha256(), 0, b""
        with open(staging / staged, "xb") as out:
            for block in entry.get_blocks(1 << 20):
                size += len(block)
                total += len(block)
                if total > limits.max_bytes:
                    raise Refused("archive-too-large", f"the archive expands past {limits.max_bytes} bytes; "
                                  "split the dataset or ask an admin to raise the limit", name)
                if total > BOMB_GRACE and total > limits.max_ratio * result.archive_bytes:
                    raise Refused("archive-bomb", f"{name!r} expands more than {limits.max_ratio} times its "
                                  "compressed size; this looks like a zip bomb", name)
                if len(head) < HEAD_BYTES:
                    head += block[:HEAD_BYTES - len(head)]
                    if (size == len(block) and block.startswith(NESTED_MAGIC)) or _is_tar(head):
                        raise Refused("archive-nested", f"{name!r} is itself an archive; extract it and pack "
                                      "its files into the one archive", name)
                digest.update(block)
                out.write(block)
        _claim(names, name, len(result.members))
        result.members.append(Member(name, staged, size, digest.hexdigest(), head))
    for name, target in links:
        index = names.get(target)
        if index is None or index < 0:
            raise Refused("archive-link", f"{name!r} links to {target!r}, which is not a file of the archive; "
                          "archive the file itself", name)
        _claim(names, name, len(result.members))
        source = result.members[index]
        result.members.append(Member(name, source.staged, source.size, source.sha256, source.head))
    _parents_are_folders(names)


def _entries(archive: Path, fmt: str):
    format_name, filter_name = ("tar", "gzip") if fmt == "tar.gz" else (fmt, "none")
    with libarchive.file_reader(str(archive), format_name=format_name, filter_name=filter_name) as reader:
        yield from reader


def _is_tar(head: bytes) -> bool:
    return len(head) > 262 and head[257:262] == b"ustar"


def _claim(names: dict, name: str, index: int) -> None:
    if name in names and not (index == -1 and names[name] == -1):
        raise Refused("archive-duplicate", f"{name!r} appears twice (after normalising './', '//' and Unicode); "
                      "keep one", name)
    names[name] = index


def _parents_are_folders(names: dict) -> None:
    for name, index in names.items():
        parent = posixpath.dirname(name)
        while parent:
            if names.get(parent, -1) >= 0:
                raise Refused("archive-duplicate", f"{parent!r} is both a file and the folder of {name!r}", name)
            parent = posixpath.dirname(parent)


def _link_target(name: str, target, symbolic: bool, limits: ArchiveLimits) -> str:
    if not isinstance(target, str) or not target:
        raise Refused("archive-link", f"{name!r} is a link without a readable target", name)
    if symbolic:
        if target.startswith("/"):
            raise Refused("archive-link", f"{name!r} links to the absolute path {target[:120]!r}", name)
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    else:  # a hardlink's target is a member name
        joined = posixpath.normpath(target)
    if joined.startswith("../") or joined == "..":
        raise Refused("archive-link", f"{name!r} links to {target[:120]!r}, outside the archive", name)
    try:
        return normalise(joined, limits)
    except Refused:
        raise Refused("archive-link", f"{name!r} links to {target[:120]!r}, which breaks the name rules",
                      name) from None
