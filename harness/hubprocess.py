"""Run a hub as a subprocess and talk to its REST API: for tests, benchmarks and scripts.

The hub runs exactly as ``ws up`` runs it (``hub_config/jupyterhub_config.py``),
with its own data root and ports and an admin service token for the API.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from harness.waiting import wait_until
from workspace_hub.catalog import REPO_ROOT


class HubError(RuntimeError):
    """The hub refused a request or a server did not reach the expected state."""


def _expect(r: requests.Response, *codes: int) -> requests.Response:
    if r.status_code not in codes:
        raise HubError(f"{r.request.method} {r.url}: {r.status_code} {r.text[:500]}")
    return r

class HubProcess:
    """A JupyterHub subprocess with this package's config, and a REST client for it."""

    def __init__(self, data_root: Path, port: int, log_path: Path, args: tuple[str, ...] = (),
                 env: dict | None = None):
        self.data_root = data_root
        self.log_path = log_path
        self.args = list(args)
        self.url = f"http://127.0.0.1:{port}"
        self.token = secrets.token_hex(16)
        self.admin_password = "admin-" + secrets.token_hex(8)
        self.env = dict(
            os.environ,
            WSHUB_DATA_ROOT=str(data_root),
            WSHUB_PORT=str(port),
            WSHUB_HUB_PORT=str(port + 81),
            WSHUB_SERVICE_TOKEN=self.token,
            WSHUB_ADMIN_PASSWORD=self.admin_password,
            **(env or {}),
        )
        self.process: subprocess.Popen | None = None
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {self.token}"
        self._library_token = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(REPO_ROOT / "hub_config/jupyterhub_config.py"),
             *self.args],
            env=self.env, cwd=self.data_root, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HubError(f"the hub exited; see {self.log_path}")
            try:
                if self.session.get(f"{self.url}/hub/api/", timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise TimeoutError("the hub did not answer within 60 s")

    def stop(self) -> None:
        """SIGTERM, as an init system would; SIGKILL to the hub and its children after 45 s."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                raise HubError(f"the hub ignored SIGTERM for 45 s; see {self.log_path}") from None

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, f"{self.url}/hub/api{path}", timeout=30, **kwargs)

    def server(self, user: str, name: str) -> dict | None:
        return self.api("GET", f"/users/{user}").json()["servers"].get(name)

    def wait_ready(self, user: str, name: str, timeout: float = 120) -> dict:
        """Poll until the server is ready; fail at once if its spawn failed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.server(user, name)
            if server and server["ready"]:
                return server
            if not (server and server["pending"]):
                raise HubError(f"{user}/{name} is neither ready nor starting: {server}; see {self.log_path}")
            time.sleep(0.2)
        raise TimeoutError(f"{user}/{name} was not ready within {timeout} s")

    def start_project(self, user: str, name: str, **options) -> dict:
        _expect(self.api("POST", f"/users/{user}/servers/{name}", json={"user_options": options}), 201, 202)
        return self.wait_ready(user, name)

    def stop_project(self, user: str, name: str, remove: bool = False) -> None:
        """Stop a server; with *remove*, also delete its record (its files stay on disk)."""
        _expect(self.api("DELETE", f"/users/{user}/servers/{name}", json={"remove": remove}), 202, 204)
        wait_until(lambda: not ((s := self.server(user, name)) and (s["pending"] or s["ready"])),
                   what=f"{user}/{name} to stop")

    def service_pid(self, module: str = "workspace_library") -> int | None:
        """The pid of this hub's managed service running ``python -m <module>``, if it runs."""
        for proc in Path("/proc").iterdir():
            try:
                if f"-m\0{module}".encode() in (proc / "cmdline").read_bytes() and \
                        f"WSHUB_DATA_ROOT={self.data_root}".encode() in (proc / "environ").read_bytes():
                    return int(proc.name)
            except (OSError, ValueError):
                continue
        return None

    def dataset(self, name: str, timeout: float = 120) -> dict:
        """The online dataset *name*: a preset (news-texts, digits) the library imports when it first starts,
        or one a test uploaded."""
        if self._library_token is None:  # the hub's own service token has no access to the library
            self._library_token = self.user_token("admin")

        def find():
            r = requests.get(f"{self.url}/services/library/api/datasets", timeout=30,
                             params={"name": name, "status": "online"},
                             headers={"Authorization": f"token {self._library_token}"})
            return r.ok and r.json()["items"] and r.json()["items"][0]
        return wait_until(find, timeout=timeout, what=f"dataset {name} to be online")

    def dataset_key(self, name: str) -> str:
        """What a spawn's ``dataset`` option names for the online dataset *name*."""
        return self.dataset(name)["key"]

    def login(self, username: str, password: str) -> requests.Session:
        """A browser-like session (cookies, XSRF) after posting the login form; logged in if the password fits."""
        session = requests.Session()
        session.get(f"{self.url}/hub/login", timeout=30)
        session.post(f"{self.url}/hub/login", timeout=30, data={
            "username": username, "password": password, "_xsrf": session.cookies.get("_xsrf")})
        return session

    def user_token(self, user: str) -> str:
        r = _expect(self.api("POST", f"/users/{user}/tokens", json={"note": "automation"}), 201)
        return r.json()["token"]
