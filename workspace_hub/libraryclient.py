"""A client of the library's REST API, for ``ws publish``, ``ws algorithms``, ``ws datasets`` and ``ws runs``.

urllib (stdlib) keeps the workspace images free of HTTP dependencies.  Inside a
workspace the hub sets ``WSHUB_LIBRARY_URL`` and ``JUPYTERHUB_API_TOKEN``, so
no login is needed; elsewhere, pass a hub API token from ``/hub/token``.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

from .errors import WorkspaceHubError

FINAL = {"ready", "online", "offline", "failed", "draft"}
CHUNK = 8 << 20  # one PATCH of a dataset upload; a dropped one is sent again from the server's offset
RETRIES = 5


class LibraryClientError(WorkspaceHubError):
    """The service refused a request, or cannot be reached; the message says why."""


class LibraryClient:
    def __init__(self, url: str | None = None, token: str | None = None):
        self.url = (url or os.environ.get("WSHUB_LIBRARY_URL") or "").rstrip("/") + "/"
        self.token = token or os.environ.get("JUPYTERHUB_API_TOKEN")
        if self.url == "/" or not self.token:
            raise LibraryClientError("the library is not configured: run this in a workspace, or set "
                                     "WSHUB_LIBRARY_URL and JUPYTERHUB_API_TOKEN (a token from /hub/token)")

    def request(self, method: str, path: str, body: dict | None = None, query: dict | None = None):
        url = f"{self.url}api/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"token {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=600) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise self._error(e) from None
        except OSError as e:
            raise LibraryClientError(f"cannot reach the library at {self.url}: {e}") from None

    def find(self, ref: str, kind: str = "algorithms") -> dict:
        """An item of *kind* by id, or by ``name`` / ``name:version`` (the newest visible one)."""
        if ref.isdigit():
            return self.request("GET", f"{kind}/{ref}")
        name, _, version = ref.partition(":")
        query = {"name": name, "sort": "-created", "per_page": 1, **({"version": version} if version else {})}
        items = self.request("GET", kind, query=query)["items"]
        if not items:
            raise LibraryClientError(f"no {kind.rstrip('s')} {ref!r} is visible to you (ws {kind} list)")
        return self.request("GET", f"{kind}/{items[0]['id']}")

    def wait(self, item_id: int, on_progress=None, timeout: float = 3600, kind: str = "algorithms") -> dict:
        """Poll until validation ends; call *on_progress* with each new progress text."""
        deadline, last = time.monotonic() + timeout, None
        while True:
            item = self.request("GET", f"{kind}/{item_id}")
            text = item["progress"] or item["status"]
            if on_progress and text != last:
                on_progress(text)
                last = text
            if item["status"] in FINAL or time.monotonic() > deadline:
                return item
            time.sleep(0.5)

    def request_text(self, path: str) -> str:
        try:
            with self._raw("GET", path) as r:
                return r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            raise self._error(e) from None
        except OSError as e:
            raise LibraryClientError(f"cannot reach the library at {self.url}: {e}") from None

    def _raw(self, method: str, path: str, data: bytes | None = None, headers: dict | None = None):
        request = urllib.request.Request(f"{self.url}api/{path}", data=data, method=method,
                                         headers={"Authorization": f"token {self.token}", **(headers or {})})
        return urllib.request.urlopen(request, timeout=600)

    def upload(self, dataset_id: int, split: str, path, on_progress=None) -> None:
        """Send an archive with the offset protocol, resuming from what the library has (after a dropped
        connection, or a previous ``ws datasets upload`` that stopped)."""
        size = os.path.getsize(path)
        archive = f"datasets/{dataset_id}/archives/{split}"
        failures = 0
        with open(path, "rb") as f:
            while True:
                try:
                    with self._raw("HEAD", archive) as r:
                        offset = int(r.headers["Upload-Offset"])
                    if offset >= size:
                        return
                    f.seek(offset)
                    chunk = f.read(CHUNK)
                    with self._raw("PATCH", archive, chunk, {"Upload-Offset": str(offset),
                                                             "Content-Type": "application/offset+octet-stream"}):
                        pass
                    failures = 0
                    if on_progress:
                        on_progress(offset + len(chunk), size)
                except urllib.error.HTTPError as e:
                    if e.code != 409 or failures >= RETRIES:  # 409: another offset; anything else is final
                        raise self._error(e) from None
                    failures += 1
                except OSError as e:
                    failures += 1
                    if failures > RETRIES:
                        raise LibraryClientError(f"the upload keeps failing ({e}); run the command again to "
                                                 "resume it") from None
                    time.sleep(min(2 ** failures, 30))

    def download(self, path: str, dest) -> int:
        """Stream GET *path* into the file *dest*; return the bytes written."""
        written = 0
        try:
            with self._raw("GET", path) as r, open(dest, "wb") as out:
                while chunk := r.read(1 << 20):
                    out.write(chunk)
                    written += len(chunk)
        except urllib.error.HTTPError as e:
            raise self._error(e) from None
        return written

    def follow_log(self, run_id: int, write, start: int = 0) -> str:
        """Write the run's log lines as they arrive (server-sent events), resuming after a dropped
        connection from the last line received; return the run's final status."""
        number, failures = start, 0
        while True:
            try:
                with self._raw("GET", f"runs/{run_id}/log?follow=1&from={number}",
                               headers={"Accept": "text/event-stream"}) as r:
                    event = {}
                    for raw in r:
                        line = raw.decode("utf-8", "replace").rstrip("\n")
                        if line:
                            key, _, value = line.partition(": ")
                            event[key] = value
                            continue
                        if event.get("event") == "end":
                            return event.get("data", "")
                        if "data" in event:
                            write(event["data"])
                            number = int(event.get("id", number + 1))
                        event, failures = {}, 0
            except urllib.error.HTTPError as e:
                raise self._error(e) from None
            except OSError as e:
                failures += 1
                if failures > RETRIES:
                    raise LibraryClientError(f"the log stream keeps failing ({e})") from None
                time.sleep(min(2 ** failures, 30))

    @staticmethod
    def _error(e: urllib.error.HTTPError) -> LibraryClientError:
        try:
            error = json.loads(e.read())["error"]
            return LibraryClientError(f"{error['message']} [{error['code']}, HTTP {e.code}]")
        except (ValueError, KeyError, TypeError):
            return LibraryClientError(f"HTTP {e.code} from {e.url}")
