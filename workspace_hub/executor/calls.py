"""Calls to a replica from an event loop: kept-open connections, no thread per call, bounded answers.

:class:`Calls` keeps the connections to one replica open and reuses each for the next call while the
replica keeps it alive; an answer is read as it arrives, cut off past its byte limit or its time.  Where a
replica is reached inside its own network namespace (the Docker backend), *make_socket* creates each new
connection's socket there (sockets belong to the namespace they were created in, whichever thread uses
them later); elsewhere (a pod IP, a ClusterIP) the loop connects as usual.

Each connection is an asyncio protocol whose answers are parsed by ``httptools`` (the binding of
Node's llhttp parser that uvicorn uses), not by ``httpcore``: this is the serve address's hot path, and
httpcore with its pure-Python h11 parser cost about 0.6 ms of the library's CPU per call (measured in
``benchmarks/serving.py``: 3 replicas doing 2 ms of work each then served 0.66x of what they serve
directly on 2 cores), against a budget of about 0.5 ms for everything the library does per call.  What is
written here is only the request line and headers, and the bookkeeping of one call per connection.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from typing import Awaitable, Callable

import httptools

from .base import AnswerTooLarge, MAX_ANSWER, Response

KEEPALIVE = 30  # seconds an idle connection to a replica is kept
MAX_IDLE = 64  # idle connections kept per replica; more are closed as their calls end
MAX_CONNECTIONS = 256  # connections open to one replica at once; more calls wait for one
MAX_HEAD = 64 * 1024  # bytes of status line and headers an answer may have (h11's limit is 16 KiB)
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})  # sent again after a reset, as nginx does


class _Connection(asyncio.Protocol):
    """One kept-open connection: one call at a time, its answer parsed as it arrives."""

    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future | None = None  # the call in progress
        self.closed = False
        self.idle_since = 0.0
        self._reset(MAX_ANSWER)

    def _reset(self, limit: int) -> None:
        self.limit, self.body, self.status, self.content_type = limit, bytearray(), 0, b""
        self.head, self.framed = 0, False  # bytes before the headers ended; whether the answer says its end

    # -- asyncio ---------------------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.answer is None or self.answer.done():  # nothing was asked: a replica that misbehaves
            return self.close()
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as e:
            return self._fail(OSError(f"the replica's answer is not HTTP (or asks to switch protocols): {e!r}"))
        if not self.status and self.answer is not None and not self.answer.done():
            self.head += len(data)  # a head that never ends would grow without bound in the parser
            if self.head > MAX_HEAD:
                self._fail(OSError(f"the replica's answer has more than {MAX_HEAD} bytes of headers"))

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.answer is not None and not self.answer.done():
            if self.status and not self.framed:  # an answer without a length ends with its connection
                return self.answer.set_result(self._response())
            self.answer.set_exception(ConnectionResetError(f"the replica closed the connection: {exc or 'EOF'}"))

    # -- httptools -------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.answer is None or self.answer.done():  # a second answer to one call: never reused
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-type":
            self.content_type = value
        elif name in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body += body
        if len(self.body) > self.limit:
            self._fail(AnswerTooLarge(f"the replica's answer passed {self.limit} bytes"))

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # 100 Continue, 103 Early Hints: the answer is still to come
            self._reset(self.limit)
            return
        if self.answer is not None and not self.answer.done():
            if not self.parser.should_keep_alive():
                self.close()
            self.answer.set_result(self._response())

    # -- calls -----------------------------------------------------------------------------------
    def _response(self) -> Response:
        content_type = self.content_type.decode("latin-1") if self.content_type else "application/json"
        return Response(self.status, bytes(self.body), content_type)

    def _fail(self, error: Exception) -> None:
        self.close()
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(error)

    def send(self, request: bytes, limit: int) -> asyncio.Future:
        self._reset(limit)
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.answer

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Calls:
    """Kept-open connections to one replica at ``host:port``, for calls from one event loop."""

    def __init__(self, host: str, port: int, make_socket: Callable[[], Awaitable[socket.socket]] | None = None):
        self.host, self.port, self.make_socket = host, port, make_socket
        self.idle: deque[_Connection] = deque()
        self.authority = f"{host}:{port}".encode()
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            if self.make_socket is None:
                _, connection = await loop.create_connection(_Connection, self.host, self.port)
                return connection
            sock = await self.make_socket()
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # written at once, not 40 ms later
                await loop.sock_connect(sock, (self.host, self.port))
                _, connection = await loop.create_connection(_Connection, sock=sock)
            except BaseException:
                sock.close()
                raise
            return connection
        except OSError as e:  # nothing was sent: another replica may take the call
            raise ConnectionRefusedError(f"the replica refused: {e!r}") from None

    def _take(self) -> _Connection | None:
        now = time.monotonic()
        while self.idle:
            connection = self.idle.pop()  # the most recently used: the likeliest still open
            if not connection.closed and now - connection.idle_since < KEEPALIVE:
                return connection
            connection.close()
        return None

    def _request(self, method: str, path: str, body: bytes, headers: dict | None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + self.authority,
                 b"Content-Length: " + str(len(body)).encode()]
        for name, value in (headers or {}).items():
            if "\r" in name or "\n" in name or "\r" in str(value) or "\n" in str(value):
                raise ValueError(f"the header {name!r} holds a line break")
            if name.lower() not in ("host", "content-length", "transfer-encoding", "connection"):
                lines.append(f"{name}: {value}".encode("latin-1"))
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    async def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                      timeout: float = 30, limit: int = MAX_ANSWER) -> Response:
        """One call within *timeout* seconds in all; past *limit* bytes :class:`AnswerTooLarge` (read no
        further); a refused connection is a :class:`ConnectionRefusedError`, a reset one a
        :class:`ConnectionResetError`, a malformed answer an :class:`OSError`, a late one a
        :class:`TimeoutError`."""
        request = self._request(method, path, body or b"", headers)
        connection = None
        try:
            async with asyncio.timeout(timeout), self.slots:
                connection = self._take()
                if connection is not None:
                    try:
                        return self._done(connection, await connection.send(request, limit))
                    except ConnectionResetError:
                        # a kept-open connection the replica closed as the call went out; the call may have run,
                        # so only an idempotent one goes once more, on a new connection
                        if method.upper() not in IDEMPOTENT:
                            raise
                connection = await self._connect()
                return self._done(connection, await connection.send(request, limit))
        except TimeoutError:
            if connection is not None:
                connection.close()
            raise TimeoutError(f"the replica's answer took more than {timeout:g} s") from None
        except BaseException:
            if connection is not None:
                connection.close()
            raise

    def _done(self, connection: _Connection, answer: Response) -> Response:
        connection.answer = None
        if not connection.closed:
            if len(self.idle) < MAX_IDLE:
                connection.idle_since = time.monotonic()
                self.idle.append(connection)
            else:
                connection.close()
        return answer

    async def aclose(self) -> None:
        while self.idle:
            self.idle.pop().close()
