"""Run the library in-process for unit tests, with a stand-in for the hub's identity check.

``FakeHubAuth`` answers what JupyterHub's ``HubOAuth`` answers for a token: a
user model, or nothing.  Everything else (handlers, database, store, jobs) is
the real service.  Tests that need the real hub are in tests/integration.
"""

from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager
from pathlib import Path

import requests

from tornado.netutil import bind_sockets

from workspace_library.app import LibraryService

USERS = {
    "owner-token": {"kind": "user", "name": "olive", "admin": False},
    "other-token": {"kind": "user", "name": "oscar", "admin": False},
    "admin-token": {"kind": "user", "name": "ada", "admin": True},
    "hub-token": {"kind": "service", "name": "library", "admin": False},
}


class FakeHubAuth:
    access_scopes = {"access:services!service=library"}
    login_url = "/hub/login"
    base_url = "/services/library/"

    def get_user(self, handler):
        token = handler.request.headers.get("Authorization", "").removeprefix("token ").strip()
        return dict(USERS[token]) if token in USERS else None

    def check_scopes(self, required, model):
        return set(required)

    def check_xsrf_cookie(self, handler):
        pass

    def _persist_url_token_if_set(self, handler):
        pass


class Client:
    """requests against the service's API, as one of USERS (or anonymous)."""

    def __init__(self, base: str, token: str | None):
        self.base = base
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"token {token}"

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, f"{self.base}api/{path}", timeout=60, **kwargs)


@contextmanager
def running_service(data_root: Path, db_url: str | None = None, runs: bool = False, **traits):
    """The service on a free loopback port, in a thread; yields (service, base URL).  With *runs*, training runs
    and service replicas start on the real engine (the run scheduler and the service monitor run), and every
    container the service started is removed when it stops."""
    data_root.mkdir(parents=True, exist_ok=True)
    service = LibraryService(data_root=str(data_root), **({"db_url": db_url} if db_url else {}), **traits)
    service.initialize([])
    service.store.clean_incoming()
    service.seed_presets()
    if runs:
        service.start_workers()
    loop = asyncio.new_event_loop()
    sockets = bind_sockets(0, "127.0.0.1")  # bound here: a port chosen first and bound later can be taken between
    port = sockets[0].getsockname()[1]
    ready = threading.Event()

    def serve():
        asyncio.set_event_loop(loop)
        server = service.make_server(FakeHubAuth())
        server.add_sockets(sockets)
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield service, f"http://127.0.0.1:{port}/services/library/"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        service.runs.close()
        service.services.close()
        service.validations.pool.shutdown(wait=True, cancel_futures=True)
        service.imports.pool.shutdown(wait=True, cancel_futures=True)  # none outlives the test's data root
        if runs:  # runs and replicas outlive a library by design: what this one started goes with it
            executor = service.executor
            if hasattr(executor, "client"):  # the Docker engine
                for container in executor.client.containers.list(all=True, filters={
                        "label": f"ai.workspace-hub.owner={executor.owner}"}):
                    container.remove(force=True)
            else:  # a test cluster goes with its test: only the connection is closed
                executor.close()
        service.sessions.kw["bind"].dispose()
