"""A bounded, streaming tar reader for untrusted image archives.

Why not :mod:`tarfile`: it reads pax and GNU long-name headers of any size
into memory, keeps every member's TarInfo for the whole archive, and (in
stream mode) copies member data in 10 KiB steps.  A hostile archive could
make it use unbounded memory, and a 2 GiB image would be slow to read.  This
reader parses ustar, pax (``path``, ``linkpath``, ``size``) and GNU ``L``/``K``
headers with hard limits, never seeks, and lets the caller consume each
member's data in large chunks (or skip it) before the next header.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

BLOCK = 512
CHUNK = 1 << 20
MAX_EXTENDED_HEADER = 64 * 1024

REGULAR, HARDLINK, SYMLINK, CHAR, BLOCKDEV, DIRECTORY, FIFO = "0", "1", "2", "3", "4", "5", "6"
DEVICE_TYPES = (CHAR, BLOCKDEV, FIFO)


class TarFormatError(ValueError):
    """The stream is not a well-formed tar archive, or passes a bound."""


class SizeLimitExceeded(TarFormatError):
    """More bytes than allowed were read (decompression bomb guard)."""


class Budget:
    """A shared byte budget for every stream of one check."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def spend(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise SizeLimitExceeded(f"more than {self.limit} bytes uncompressed")


class HashingReader:
    """Wraps a stream: sha256 (unless *hash* is false) and byte count of everything read, optionally budgeted."""

    def __init__(self, raw: BinaryIO, budget: Budget | None = None, hash: bool = True):
        self.raw = raw
        self.budget = budget
        self.sha256 = hashlib.sha256() if hash else None
        self.count = 0

    def read(self, n: int = CHUNK) -> bytes:
        data = self.raw.read(n)
        if self.sha256 is not None:
            self.sha256.update(data)
        self.count += len(data)
        if self.budget:
            self.budget.spend(len(data))
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


class Prepended:
    """A stream with bytes already read (a peeked head) put back in front."""

    def __init__(self, head: bytes, raw):
        self.head, self.raw = head, raw

    def read(self, n: int = CHUNK) -> bytes:
        if self.head:
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.raw.read(n)


class Decompressor:
    """A readable stream over gzip or zstd data; output is produced in bounded steps."""

    GZIP_MAGIC = b"\x1f\x8b"
    ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

    def __init__(self, raw, kind: str):
        self.raw, self.kind = raw, kind
        self.pending = b""
        self.unconsumed = b""
        if kind == "gzip":
            self._gzip = zlib.decompressobj(wbits=31)
        else:
            import zstandard

            self._zstd = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)

    @classmethod
    def kind_of(cls, head: bytes) -> str | None:
        if head.startswith(cls.GZIP_MAGIC):
            return "gzip"
        if head.startswith(cls.ZSTD_MAGIC):
            return "zstd"
        return None

    def read(self, n: int = CHUNK) -> bytes:
        try:
            if self.kind == "zstd":
                return self._zstd.read(n)
            while len(self.pending) < n and not self._gzip.eof:
                data = self.unconsumed or self.raw.read(CHUNK)
                if not data:
                    raise TarFormatError("gzip stream truncated")
                # bounded output per step: a tiny input never inflates to gigabytes at once
                self.pending += self._gzip.decompress(data, max(n, CHUNK))
                self.unconsumed = self._gzip.unconsumed_tail
                if self._gzip.eof and (self._gzip.unused_data or self.raw.read(1)):
                    # zlib stops after one member, Go's reader (docker load) reads on: refuse the difference
                    raise TarFormatError("data after the end of the gzip stream (a second gzip member); "
                                         "compress the archive as one gzip stream")
        except TarFormatError:
            raise
        except Exception as e:  # zlib.error, zstandard.ZstdError
            raise TarFormatError(f"corrupt {self.kind} data: {e}") from None
        data, self.pending = self.pending[:n], self.pending[n:]
        return data


@dataclass
class Entry:
    name: str
    type: str
    size: int
    linkname: str
    mode: int
    sparse: bool = False  # GNU sparse headers: readers disagree on the name and the data


class MemberData:
    """The data of the current member; must be read or skipped before the next header."""

    def __init__(self, stream, size: int):
        self.stream = stream
        self.size = self.left = size

    def read(self, n: int = CHUNK) -> bytes:
        if self.left <= 0:
            return b""
        data = self.stream.read(min(n, self.left))
        if not data:
            raise TarFormatError("archive truncated inside a member")
        self.left -= len(data)
        return data

    def skip(self) -> None:
        while self.read(CHUNK):
            pass


def _number(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # base-256 (GNU) for large values
        value = int.from_bytes(field[1:], "big")
        if field[0] & 0x40:
            raise TarFormatError("negative number in a tar header")
        return value
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise TarFormatError(f"bad number {text[:20]!r} in a tar header") from None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax(data: bytes) -> dict[str, str]:
    records, pos = {}, 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            raise TarFormatError("malformed pax header")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError("malformed pax header length") from None
        if length <= space - pos or pos + length > len(data):
            raise TarFormatError("malformed pax record")
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


class TarReader:
    """Iterate the entries of a tar stream: ``for entry, data in TarReader(stream)``."""

    def __init__(self, stream, max_entries: int = 10_000_000):
        self.stream = stream
        self.max_entries = max_entries
        self.entries = 0
        self._current: MemberData | None = None

    def _exact(self, n: int) -> bytes:
        parts, left = [], n
        while left:
            data = self.stream.read(left)
            if not data:
                raise TarFormatError("archive truncated")
            parts.append(data)
            left -= len(data)
        return b"".join(parts)

    def _skip_padding(self, size: int) -> None:
        if size % BLOCK:
            self._exact(BLOCK - size % BLOCK)

    def __iter__(self) -> Iterator[tuple[Entry, MemberData]]:
        overrides: dict[str, str] = {}
        while True:
            if self._current is not None:
                self._current.skip()
                self._skip_padding(self._current.size)
                self._current = None
            header = self._read_block()
            if header is None:
                return
            if not any(header):
                return  # end-of-archive marker; trailing blocks are the caller's to drain
            if not _checksum_ok(header):
                raise TarFormatError("bad tar header checksum")
            kind = chr(header[156]) if header[156] else REGULAR
            size = _number(header[124:136])
            if kind in "xgLK":
                if size > MAX_EXTENDED_HEADER:
                    raise TarFormatError(f"extended header of {size} bytes (limit {MAX_EXTENDED_HEADER})")
                data = self._exact(size)
                self._skip_padding(size)
                if kind == "x":
                    overrides.update(_pax(data))
                elif kind == "L":
                    overrides["path"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                elif kind == "K":
                    overrides["linkpath"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                continue  # global pax headers ('g') carry nothing we check
            self.entries += 1
            if self.entries > self.max_entries:
                raise TarFormatError(f"more than {self.max_entries} entries")
            name = _text(header[0:100])
            if header[257:262] == b"ustar" and header[345]:
                name = _text(header[345:500]) + "/" + name
            if "size" in overrides:
                try:
                    size = int(overrides["size"])
                except ValueError:
                    raise TarFormatError("bad pax size") from None
            entry = Entry(
                name=overrides.get("path", name),
                type=kind,
                size=size if kind in (REGULAR, "7") else 0,
                linkname=overrides.get("linkpath", _text(header[157:257])),
                mode=_number(header[100:108]),
                sparse=kind == "S" or any(key.startswith("GNU.sparse.") for key in overrides),
            )
            overrides = {}
            self._current = MemberData(self.stream, entry.size)
            yield entry, self._current

    def _read_block(self) -> bytes | None:
        first = self.stream.read(BLOCK)
        if not first:
            return None
        if len(first) < BLOCK:
            first += self._exact(BLOCK - len(first))
        return first


def _checksum_ok(header: bytes) -> bool:
    """The ustar checksum: the header's byte sum with the checksum field counted as spaces."""
    return _number(header[148:156]) == sum(header[:148]) + 8 * 32 + sum(header[156:BLOCK])


def looks_like_tar(head: bytes) -> bool:
    """Whether *head* (at least 512 bytes) starts with a valid tar header."""
    if len(head) < BLOCK or not any(head[:BLOCK]):
        return False
    try:
        return _checksum_ok(head)
    except TarFormatError:
        return False
