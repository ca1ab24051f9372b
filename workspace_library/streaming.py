"""Stream a manifest's files to an HTTP client as a zip or a tar.gz, written in a thread as it is sent.

:mod:`zipfile` and :mod:`tarfile` write to a file object; here that object
hands each buffer to the handler through a small queue, so memory stays flat
and a slow client slows the writer (backpressure).  A client that goes away
stops the writer at its next write.  No library streams an archive into a
tornado handler, hence these forty lines.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import zipfile

from tornado.iostream import StreamClosedError

FORMATS = {"zip": "application/zip", "tar.gz": "application/gzip"}


class _Pipe(io.RawIOBase):
    abandoned = False  # set when the client went away

    def __init__(self, loop, queue):
        self.loop, self.queue = loop, queue

    def writable(self):
        return True

    def write(self, data):
        if self.abandoned:
            raise OSError("the client went away")
        asyncio.run_coroutine_threadsafe(self.queue.put(bytes(data)), self.loop).result()
        return len(data)


def _write(out, files: list, open_file, fmt: str) -> None:
    if fmt == "zip":
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            for name, digest, _ in files:
                with open_file(digest) as src, archive.open(name, "w", force_zip64=True) as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
        return
    with tarfile.open(fileobj=out, mode="w|gz") as archive:
        for name, digest, size in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode = size, 0o644
            with open_file(digest) as src:
                archive.addfile(info, src)


def stored(path_of):
    """Files of the content store: *digest* opened at ``path_of(digest)``."""
    return lambda digest: open(path_of(digest), "rb")


async def send_archive(handler, files: list, open_file, filename: str, fmt: str = "zip") -> None:
    """Send *files* (``[name, key, size]``, each read from ``open_file(key)``) as *filename*."""
    handler.set_header("Content-Type", FORMATS[fmt])
    handler.set_header("Content-Disposition", f'attachment; filename="{filename}"')
    queue: asyncio.Queue = asyncio.Queue(maxsize=8)
    loop = asyncio.get_running_loop()
    pipe = _Pipe(loop, queue)

    def write():
        with io.BufferedWriter(pipe, 1 << 20) as out:
            _write(out, files, open_file, fmt)

    writer = handler.service.offload(write)
    writer.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (chunk := await queue.get()) is not None:
            handler.write(chunk)
            await handler.flush()
    except StreamClosedError:
        pipe.abandoned = True
        while not writer.done():  # let the writer's pending put through; its next write stops it
            while not queue.empty():
                queue.get_nowait()
            await asyncio.sleep(0.01)
        return
    await writer
    handler.finish()
