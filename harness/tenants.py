"""Helpers for the tests where users of one hub attack each other (tests/integration/test_tenants.py).

Users with their own library clients (any name, ``%`` included), model and dataset zips in memory,
requests sent to an exact URL with a bounded read of the answer, and the library's resident memory.
"""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import quote

import requests

from harness.archives import zip_archive
from harness.library import Client


def create_user(hub, name: str) -> requests.Response:
    """POST the hub user *name*, URL-encoded (so that ``%`` or ``_`` is a name like any other)."""
    return hub.api("POST", f"/users/{quote(name, safe='')}")


def tenant(hub, name: str) -> Client:
    """A library client for the hub user *name*, created if new, with a token of their own."""
    r = create_user(hub, name)
    assert r.status_code in (201, 409), f"creating the user {name!r}: {r.status_code} {r.text[:300]}"
    r = hub.api("POST", f"/users/{quote(name, safe='')}/tokens", json={"note": "tenants"})
    assert r.status_code == 201, r.text
    return Client(f"{hub.url}/services/library/", r.json()["token"])


def zipped(files: dict[str, bytes]) -> bytes:
    """A zip of *files* (name -> content), as regular files with a fixed date."""
    buffer = io.BytesIO()
    zip_archive(buffer, list(files.items()))
    return buffer.getvalue()


def send(client: Client, method: str, url: str, limit: int = 1 << 20, timeout: float = 120,
         **kwargs) -> requests.Response:
    """*method* on exactly *url* (its path is not re-encoded) with *client*'s token; at most *limit* bytes of
    the answer are read, so a huge or endless answer can neither fill the test's memory nor hang it."""
    request = client.session.prepare_request(requests.Request(method, url, **kwargs))
    request.url = url
    r = client.session.send(request, stream=True, timeout=timeout)
    try:
        r._content = r.raw.read(limit, decode_content=True)  # what .text and .json() read
    finally:
        r.close()
    return r


def service_rss_kib(hub) -> int:
    """The library process's resident memory (VmRSS), in KiB."""
    status = (Path("/proc") / str(hub.service_pid()) / "status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])
