"""Calls to a replica (``workspace_hub.executor.calls``) against a real loopback server that answers as
told: kept-open connections, bounded answers, and what a replica that misbehaves gets."""

import asyncio

import pytest

from workspace_hub.executor import AnswerTooLarge
from workspace_hub.executor.calls import Calls

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"label\": \"news\"}"


class Replica:
    """A loopback server that reads one request at a time and answers with ``answer(request_number)``:
    bytes to write, then whether to close the connection."""

    def __init__(self, answer):
        self.answer, self.connections, self.requests = answer, 0, []

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), b"0"))
                self.requests.append(head + await reader.readexactly(length))
                data, close = self.answer(len(self.requests))
                writer.write(data)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


def calling(answer, calls_made):
    """Run *calls_made(calls, replica)* against a replica answering with *answer*."""
    async def main():
        replica = Replica(answer)
        server = await asyncio.start_server(replica.handle, "127.0.0.1", 0)
        calls = Calls("127.0.0.1", server.sockets[0].getsockname()[1])
        try:
            return await calls_made(calls, replica)
        finally:
            await calls.aclose()
            server.close()
    return asyncio.run(main())


def test_calls_reuse_one_kept_open_connection():
    async def twenty(calls, replica):
        answers = [await calls.request("POST", "/predict", b'{"text": "x"}', {"Content-Type": "application/json"})
                   for _ in range(20)]
        return answers, replica
    answers, replica = calling(lambda n: (OK, False), twenty)
    assert {(a.status, a.body, a.content_type) for a in answers} == {(200, b'{"label": "news"}', "application/json")}
    assert replica.connections == 1 and len(replica.requests) == 20
    assert replica.requests[0].startswith(b"POST /predict HTTP/1.1\r\n")
    assert b"Content-Length: 13\r\n" in replica.requests[0] and replica.requests[0].endswith(b'{"text": "x"}')


def test_the_callers_framing_headers_are_not_forwarded():
    """A caller cannot smuggle a second request by choosing its own Content-Length or Transfer-Encoding."""
    async def one(calls, replica):
        await calls.request("POST", "/p", b"{}", {"Content-Length": "0", "Transfer-Encoding": "chunked",
                                                  "Connection": "close", "X-Trace": "1"})
        return replica.requests[0]
    request = calling(lambda n: (OK, False), one)
    assert b"Transfer-Encoding" not in request and b"Connection" not in request and b"X-Trace: 1" in request
    assert request.count(b"Content-Length") == 1 and b"Content-Length: 2\r\n" in request


def test_chunked_and_close_delimited_answers_are_read_whole():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n"
    until_close = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"
    assert calling(lambda n: (chunked, False), lambda c, r: c.request("GET", "/")).body == b'{"a": 1}'
    answer = calling(lambda n: (until_close, True), lambda c, r: c.request("GET", "/"))
    assert (answer.body, answer.content_type) == (b"all of it", "text/plain")


def test_an_answer_past_the_limit_is_cut_off_and_its_connection_dropped():
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000

    async def calls_made(calls, replica):
        with pytest.raises(AnswerTooLarge):
            await calls.request("GET", "/", limit=1000)
        assert (await calls.request("GET", "/", limit=10_000)).body == b"x" * 5000
        return replica.connections
    assert calling(lambda n: (big, False), calls_made) == 2


def test_a_kept_open_connection_the_replica_closed_is_replaced():
    async def calls_made(calls, replica):
        first = await calls.request("GET", "/")
        await asyncio.sleep(0.1)  # the replica has closed it meanwhile
        return first, await calls.request("GET", "/"), replica.connections
    first, second, connections = calling(lambda n: (OK, True), calls_made)
    assert first.status == second.status == 200 and connections == 2


def test_a_late_answer_is_a_timeout():
    async def calls_made(calls, replica):
        with pytest.raises(TimeoutError, match="more than 0.2 s"):
            await calls.request("GET", "/", timeout=0.2)
    calling(lambda n: (b"HTTP/1.1 200 OK\r\n", False), calls_made)


def test_a_replica_that_is_not_http_or_resets_mid_answer_is_an_oserror_and_the_call_is_not_sent_again():
    async def calls_made(calls, replica):
        with pytest.raises(OSError) as refused:
            await calls.request("GET", "/")
        return refused.value, len(replica.requests)
    error, sent = calling(lambda n: (b"SSH-2.0-OpenSSH\r\n\r\n", True), calls_made)
    assert "not HTTP" in str(error) and sent == 1
    error, sent = calling(lambda n: (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhalf", True), calls_made)
    assert isinstance(error, ConnectionResetError) and sent == 1


def test_a_second_answer_to_one_call_is_never_read_as_the_next_one():
    """A replica that answers twice (the second would go to the next caller) loses the connection."""
    async def calls_made(calls, replica):
        first = await calls.request("GET", "/")
        second = await calls.request("GET", "/")
        return first.body, second.body, replica.connections
    twice = OK + b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret"
    assert calling(lambda n: (twice, False), calls_made) == (b'{"label": "news"}', b'{"label": "news"}', 2)


def test_a_replica_that_refuses_connections_is_a_connection_refused_error():
    async def main():
        with pytest.raises(ConnectionRefusedError):
            await Calls("127.0.0.1", 1).request("GET", "/")
    asyncio.run(main())


def test_an_early_hint_is_not_taken_for_the_answer():
    """A 103 (or 100) comes before the answer: the call waits for the real one, and the next call gets its own."""
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </x.css>\r\n\r\n"

    async def calls_made(calls, replica):
        return [(await calls.request("GET", f"/{n}")).status for n in range(3)], replica.connections
    answers, connections = calling(lambda n: (early + OK, False), calls_made)
    assert answers == [200, 200, 200] and connections == 1


def test_an_answer_cut_short_is_a_reset_not_a_shorter_answer():
    cut = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 100\r\n\r\nhalf"

    async def calls_made(calls, replica):
        with pytest.raises(ConnectionResetError):
            await calls.request("GET", "/")
    calling(lambda n: (cut, True), calls_made)


def test_a_large_answer_in_one_piece_is_not_taken_for_large_headers():
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n" + b"x" * 300_000

    async def calls_made(calls, replica):
        return await calls.request("GET", "/", limit=1_000_000)
    assert len(calling(lambda n: (big, False), calls_made).body) == 300_000


def test_headers_that_never_end_are_cut_off():
    """A hostile replica streaming one endless header would grow the library's memory for every tenant."""
    endless = b"HTTP/1.1 200 OK\r\nX-Endless: " + b"a" * (1024 * 1024)

    async def calls_made(calls, replica):
        with pytest.raises(OSError, match="bytes of headers"):
            await calls.request("GET", "/")
    calling(lambda n: (endless, False), calls_made)


def test_a_post_is_not_sent_again_after_a_reset_but_a_get_is():
    """A reset once a call went out: it may have run, so a POST is not sent twice; a GET may be."""
    def answer(n):
        return (OK, False) if n == 1 else (b"", True)  # the first answer keeps the connection; then it dies

    async def calls_made(calls, replica):
        await calls.request("GET", "/warm")
        with pytest.raises(ConnectionResetError):
            await calls.request("POST", "/charge", b"{}")
        return [r.split(b" ")[1] for r in replica.requests]
    assert calling(answer, calls_made) == [b"/warm", b"/charge"]


def test_a_line_break_in_a_header_is_refused_before_anything_is_sent():
    async def calls_made(calls, replica):
        with pytest.raises(ValueError, match="line break"):
            await calls.request("POST", "/p", b"{}", {"Content-Type": "application/json\r\nX-Admin: 1"})
        return replica.requests
    assert calling(lambda n: (OK, False), calls_made) == []
