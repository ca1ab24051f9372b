"""Zip and rar archives for the dataset tests, hostile ones included.

Zips come from :mod:`zipfile`, which writes any name and any mode bits it is
given.  Nothing on PyPI or in Debian's main archive *writes* rar (``rar`` is
non-free), so :func:`rar` writes RAR 4 with the "store" method by hand, from
the format's public technical note: a marker block, an archive header, one file
header plus data per entry, and an end block, each header with its CRC.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

Entry = tuple  # (name: str | bytes, data: bytes, mode: int)  mode 0 means a regular 0644 file

REG, DIR, LINK = 0o100644, 0o040755, 0o120777


def zip_archive(path: Path, entries: list, compression=zipfile.ZIP_DEFLATED, encrypt: set = frozenset()) -> Path:
    """*entries*: ``(name, data)`` or ``(name, data, mode)``; names in *encrypt* get the encryption flag."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data, *mode in entries:
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (mode[0] if mode else REG) << 16
            info.compress_type = compression
            archive.writestr(info, data)
    if encrypt:  # zipfile clears the flag when it writes: set bit 0 in the local and central headers
        raw = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as archive:
            infos = [i for i in archive.infolist() if i.filename in encrypt]
        for info in infos:
            raw[info.header_offset + 6] |= 0x1
        for start in _central_entries(raw, {i.filename.encode() for i in infos}):
            raw[start + 8] |= 0x1
        path.write_bytes(bytes(raw))
    return path


def _central_entries(raw: bytes, names: set) -> list[int]:
    starts, at = [], raw.find(b"PK\x01\x02")
    while at != -1:
        length = struct.unpack_from("<H", raw, at + 28)[0]
        if bytes(raw[at + 46:at + 46 + length]) in names:
            starts.append(at)
        at = raw.find(b"PK\x01\x02", at + 46)
    return starts


def zip_of_tree(path: Path, root: Path) -> Path:
    """A zip of every file under *root*, with names relative to it."""
    return zip_archive(path, [(str(p.relative_to(root)), p.read_bytes()) for p in sorted(root.rglob("*"))
                              if p.is_file()])


def _rar_block(kind: int, flags: int, body: bytes, add: bytes = b"") -> bytes:
    header = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(header) & 0xFFFF) + header + add


def rar(path: Path, entries: list, encrypt: set = frozenset()) -> Path:
    """A RAR 4 archive of *entries* (``(name, data)`` or ``(name, data, mode)``), stored uncompressed."""
    out = io.BytesIO()
    out.write(b"Rar!\x1a\x07\x00")
    out.write(_rar_block(0x73, 0, b"\0" * 6))
    for name, data, *mode in entries:
        mode = mode[0] if mode else REG
        raw = name if isinstance(name, bytes) else name.encode()
        flags = 0x8000  # LONG_BLOCK: the data follows the header
        if mode & 0o170000 == DIR:
            flags |= 0x00E0
        if name in encrypt:
            flags |= 0x0004
        body = struct.pack("<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), 0x5C210000, 29, 0x30,
                           len(raw), mode) + raw
        out.write(_rar_block(0x74, flags, body, data))
    out.write(_rar_block(0x7B, 0x4000, b""))
    path.write_bytes(out.getvalue())
    return path


def deflate_bomb(path: Path, gigabytes: int) -> Path:
    """A zip of one file of *gigabytes* GiB of zeros, about 1 MiB per GiB: one fully flushed deflate
    block of 1 MiB of zeros, repeated (each flush resets the compressor, so the blocks are identical)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    blocks = gigabytes * 1024
    body = block * blocks + zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    size = blocks << 20
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(zeros, crc)
    name = b"zeros.txt"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 8, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(name), 20)
    zip64 = struct.pack("<HHQQ", 1, 16, size, len(body))
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x031E, 45, 0, 8, 0, 0x21, crc, 0xFFFFFFFF,
                          0xFFFFFFFF, len(name), 28, 0, 0, 0, REG << 16, 0)
    central += name + struct.pack("<HHQQQ", 1, 24, size, len(body), 0)
    offset = len(local) + len(name) + len(zip64) + len(body)
    end64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 1, 1, len(central), offset)
    locator = struct.pack("<IIQI", 0x07064B50, 0, offset + len(central), 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), 0xFFFFFFFF, 0)
    path.write_bytes(local + name + zip64 + body + central + end64 + locator + end)
    return path
