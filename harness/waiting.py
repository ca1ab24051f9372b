"""Polling with a hang guard, and free loopback ports: one copy for every test and benchmark."""

from __future__ import annotations

import random
import socket
import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 60, interval: float = 0.2, what: str = "the condition") -> T:
    """Call *check* until it returns something truthy, and return that; fail after *timeout* seconds.

    The timeout is a hang guard, never a measurement: no test asserts how long anything took.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f} s (last: {result!r})")
        time.sleep(interval)


def status_of(url: str) -> int | None:
    """The HTTP status *url* answers with, or None when nothing answers."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def answers(url: str) -> bool:
    """Whether *url* answers HTTP at all (any status)."""
    return status_of(url) is not None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, below the kernel's ephemeral range.

    A port the kernel hands out (bind to 0) is also what it hands the next outgoing connection as its local
    port, so a server started on it a moment later can find it taken; one picked at random below that range
    is only ever taken by another server.
    """
    low = _ephemeral_low()
    for _ in range(100):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port found below {low}")


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
