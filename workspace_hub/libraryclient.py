"""A client of the library's REST API, for ``ws publish`` and ``ws algorithms``.

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
            try:
                error = json.loads(e.read())["error"]
                message = f"{error['message']} [{error['code']}, HTTP {e.code}]"
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {e.code} from {url}"
            raise LibraryClientError(message) from None
        except OSError as e:
            raise LibraryClientError(f"cannot reach the library at {self.url}: {e}") from None

    def find(self, ref: str) -> dict:
        """An algorithm by id, or by ``name`` / ``name:version`` (the newest visible one)."""
        if ref.isdigit():
            return self.request("GET", f"algorithms/{ref}")
        name, _, version = ref.partition(":")
        query = {"name": name, "sort": "-created", "per_page": 1, **({"version": version} if version else {})}
        items = self.request("GET", "algorithms", query=query)["items"]
        if not items:
            raise LibraryClientError(f"no algorithm {ref!r} is visible to you (ws algorithms list)")
        return self.request("GET", f"algorithms/{items[0]['id']}")

    def wait(self, algorithm_id: int, on_progress=None, timeout: float = 3600) -> dict:
        """Poll until validation ends; call *on_progress* with each new progress text."""
        deadline, last = time.monotonic() + timeout, None
        while True:
            item = self.request("GET", f"algorithms/{algorithm_id}")
            text = item["progress"] or item["status"]
            if on_progress and text != last:
                on_progress(text)
                last = text
            if item["status"] in FINAL or time.monotonic() > deadline:
                return item
            time.sleep(0.5)
