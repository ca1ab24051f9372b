"""Calls to a replica from an event loop: kept-open connections, no thread per call, bounded answers.

:class:`Calls` is an ``httpcore`` connection pool (the HTTP/1.1 engine under httpx) for one replica: a
connection is reused for the next call while the replica keeps it alive, and an answer is read as a
stream, cut off past its byte limit or its time.  Where a replica is reached inside its own network
namespace (the Docker backend), *make_socket* creates each new connection's socket there (sockets belong
to the namespace they were created in, whichever thread uses them later), and :class:`SocketBackend`
hands it to httpcore; elsewhere (a pod IP, a ClusterIP) httpcore connects as usual.
"""

from __future__ import annotations

import asyncio
import select
import socket
from typing import Awaitable, Callable

import httpcore

from .base import AnswerTooLarge, MAX_ANSWER, Response

KEEPALIVE = 30  # seconds an idle connection to a replica is kept


class _Stream(httpcore.AsyncNetworkStream):
    """An asyncio stream pair as httpcore's network stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return await asyncio.wait_for(self.reader.read(max_bytes), timeout)
        except asyncio.TimeoutError:
            raise httpcore.ReadTimeout("the replica did not answer in time") from None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.writer.write(buffer)
        try:
            await asyncio.wait_for(self.writer.drain(), timeout)
        except asyncio.TimeoutError:
            raise httpcore.WriteTimeout("the replica did not read in time") from None

    async def aclose(self) -> None:
        self.writer.close()

    async def start_tls(self, *args, **kwargs):
        raise httpcore.UnsupportedProtocol("replicas speak plain HTTP inside their sandbox")

    def get_extra_info(self, info: str):
        if info == "is_readable":  # an idle connection with something to read was closed, or misbehaves
            sock = self.writer.get_extra_info("socket")
            return self.reader.at_eof() or bool(sock is not None and select.select([sock], [], [], 0)[0])
        return self.writer.get_extra_info(info)


class SocketBackend(httpcore.AsyncNetworkBackend):
    """httpcore's connections on sockets that *make_socket* creates (in a replica's network namespace)."""

    def __init__(self, make_socket: Callable[[], Awaitable[socket.socket]]):
        self.make_socket = make_socket

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        sock = await self.make_socket()
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body go as written, not 40 ms later
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), timeout)
            reader, writer = await asyncio.open_connection(sock=sock)
        except (OSError, asyncio.TimeoutError) as e:
            sock.close()
            raise httpcore.ConnectError(f"the replica refused: {e!r}") from None
        return _Stream(reader, writer)

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise httpcore.UnsupportedProtocol("replicas are reached over TCP")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Calls:
    """Kept-open connections to one replica at ``host:port``, for calls from one event loop."""

    def __init__(self, host: str, port: int, backend: httpcore.AsyncNetworkBackend | None = None):
        self.origin = f"http://{host}:{port}"
        self.pool = httpcore.AsyncConnectionPool(max_connections=256, keepalive_expiry=KEEPALIVE,
                                                 network_backend=backend)

    async def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                      timeout: float = 30, limit: int = MAX_ANSWER) -> Response:
        """One call within *timeout* seconds in all; past *limit* bytes :class:`AnswerTooLarge` (read no
        further); a refused connection, a malformed answer or one that takes longer is an :class:`OSError`."""
        try:
            async with asyncio.timeout(timeout):
                async with self.pool.stream(method.encode(), self.origin + path, headers=list((headers or {}).items()),
                                            content=body or b"") as answer:
                    data = bytearray()
                    async for chunk in answer.aiter_stream():
                        data += chunk
                        if len(data) > limit:
                            raise AnswerTooLarge(f"the replica's answer passed {limit} bytes")
                    content_type = dict((k.lower(), v) for k, v in answer.headers).get(b"content-type")
                    return Response(answer.status, bytes(data),
                                    content_type.decode("latin-1") if content_type else "application/json")
        except TimeoutError:
            raise TimeoutError(f"the replica's answer took more than {timeout:g} s") from None
        except httpcore.TimeoutException as e:
            raise TimeoutError(str(e)) from None
        except httpcore.ConnectError as e:  # nothing was sent: another replica may take the call
            raise ConnectionRefusedError(str(e)) from None
        except httpcore.NetworkError as e:  # reset or closed while the call was on its way
            raise ConnectionResetError(str(e)) from None
        except (httpcore.ProtocolError, httpcore.UnsupportedProtocol) as e:
            raise OSError(f"the replica's answer is not HTTP: {e!r}") from None

    async def aclose(self) -> None:
        await self.pool.aclose()
