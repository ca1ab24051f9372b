"""``python -m workspace_library``: the library, started and proxied by the hub.

The hub passes the usual service environment (``JUPYTERHUB_API_TOKEN``,
``JUPYTERHUB_SERVICE_URL``, ``JUPYTERHUB_SERVICE_PREFIX``, OAuth client
settings); everything else is a trait of :class:`LibraryService`, set on the
command line (``--LibraryService.db_url=...``) or in ``library_config.py`` in
the data root.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import requests
from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler
from sqlalchemy import select
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import Bool, Float, Integer, List, Type, Unicode, default
from traitlets.config import Application

from workspace_hub.catalog import DEFAULT_CATALOG_DIR, load_catalog
from workspace_hub.contract import MAX_MODEL_BYTES
from workspace_hub.executor import EngineError, EngineUnavailable
from workspace_hub.files import write_private

from . import base, pages
from .algorithms import api as algorithm_api
from .algorithms.validations import Validations
from .envs import api as env_api
from .db import open_database
from .models import SYSTEM_OWNER, BaseEnv, Status, Visibility
from .access import Who
from .errors import LibraryError
from .quota import Quota, Reservations
from .datasets import api as dataset_api
from .algorithms import presets as algorithm_presets
from .datasets import presets as dataset_presets
from .datasets.archive import ArchiveLimits
from .datasets.imports import Imports
from .registry import api as model_api
from .registry.rules import register
from .runs import api as run_api
from .runs.queue import Runs
from .runs.rules import RunLimits
from .projects import api as project_api
from .projects import sources as project_sources
from .services import api as service_api
from .services.replicas import Services
from .store import TarStore


class LibraryService(Application):
    """The algorithm and base-environment library, as a JupyterHub service."""

    name = "workspace-hub-library"
    description = __doc__

    data_root = Unicode(config=True, help="Data root shared with the hub: users' projects are read from it and "
                                          "tars are stored in <data_root>/library/ (default $WSHUB_DATA_ROOT).")

    @default("data_root")
    def _default_data_root(self):
        return os.environ.get("WSHUB_DATA_ROOT", "data")

    db_url = Unicode(config=True, help="SQLAlchemy URL of the library database (default: SQLite in the data "
                                       "root). Use Postgres for multi-host sites.")

    @default("db_url")
    def _default_db_url(self):
        if os.environ.get("WSHUB_LIBRARY_DB_URL"):
            return os.environ["WSHUB_LIBRARY_DB_URL"]
        path = Path(self.data_root).resolve() / "library.sqlite"
        write_private(path, b"")  # private from its first byte; SQLite fills the empty file
        return f"sqlite:///{path}"

    max_upload_bytes = Integer(20 * 1024**3, min=1, config=True,
                               help="Largest file (image tar, dataset or model archive) accepted, in bytes.")
    user_quota_bytes = Integer(100 * 1024**3, min=0, config=True,
                               help="Bytes each user may keep in the library: image tars, dataset archives and "
                                    "models, uploaded or trained (admins: no quota).")
    max_request_bytes = Integer(1024**2, min=1024, config=True,
                                help="Largest request body, except on the upload endpoints, where an "
                                     "authenticated owner may send up to max_upload_bytes.")
    smoke_by_default = Bool(True, config=True, help="Run each image once, sandboxed, before it is ready. "
                                                    "Admins may still switch it off per item.")
    registry = Unicode(config=True, help="Registry (host:port) to push validated images to; empty keeps them in "
                                         "the local engine only (default $WSHUB_LIBRARY_REGISTRY).")

    @default("registry")
    def _default_registry(self):
        return os.environ.get("WSHUB_LIBRARY_REGISTRY", "")

    dataset_max_bytes = Integer(50 * 1024**3, min=1, config=True,
                                help="Most bytes one dataset archive may expand to (a zip bomb stops there).")
    dataset_max_files = Integer(200_000, min=1, config=True, help="Most files one dataset archive may hold.")
    dataset_max_ratio = Integer(200, min=1, config=True,
                                help="Most bytes out per byte in when an archive expands (past its first 64 MiB).")
    run_slots = Integer(2, min=1, config=True, help="Training runs that run at once on this engine.")
    run_per_user = Integer(2, min=1, config=True, help="Training runs one user may have running at once.")
    run_max_mem_gb = Float(8, min=0.25, config=True, help="Most memory a training run may ask for, in GB.")
    run_max_cpus = Float(4, min=0.1, config=True, help="Most CPUs a training run may ask for.")
    run_max_runtime = Integer(24 * 3600, min=10, config=True, help="Longest maximum runtime a run may set, in seconds.")
    serve_max_answer_bytes = Integer(10 * 1024**2, min=1, config=True,
                                     help="Largest answer a service's replica may send through its address; a "
                                          "larger one is refused with a 502 (answer-too-large), read no further.")
    online_test_idle = Float(300, min=1, config=True,
                             help="Seconds an online test's replica waits for another call before it is removed.")
    service_health_timeout = Float(60, min=1, config=True, help="Seconds a new service replica gets to answer /health "
                                                          "before it is replaced (or a redo is rolled back).")
    project_code_max_bytes = Integer(1024**3, min=1, config=True,
                                     help="Largest code a new project brings in from its page: an uploaded zip or "
                                          "tar.gz, or a git clone.")
    git_networks = List(Unicode(), config=True,
                        help="Networks (CIDR) besides public addresses that a new project's git URL may resolve "
                             "to, such as a site's own git server (10.20.0.0/16); loopback and private addresses "
                             "are refused otherwise, since the library's host reaches what users' workspaces may "
                             "not.")
    workspace_uid = Integer(1000, config=True, help="uid that owns the code a new project brings in: the spawner's "
                                                    "WorkspaceMixin.workspace_uid (set both together).")
    workspace_gid = Integer(1000, config=True, help="gid of that code: the spawner's WorkspaceMixin.workspace_gid.")
    catalog_dir = Unicode(str(DEFAULT_CATALOG_DIR), config=True,
                          help="The static env catalog, seeded into the library as presets.")
    workers = Integer(2, min=1, config=True, help="Validations that run at once.")
    executor_class = Type(klass="workspace_hub.executor.Executor", config=True,
                          help="The executor every run, validation, online test and service replica starts on: the "
                               "local Docker engine, or the cluster on the kubernetes profile ($WSHUB_PROFILE).")

    @default("executor_class")
    def _default_executor_class(self):
        if os.environ.get("WSHUB_PROFILE") == "kubernetes":
            return "workspace_hub.executor.kubernetes.KubernetesExecutor"
        return "workspace_hub.executor.docker.DockerExecutor"
    service_name = Unicode(config=True, help="This service's name in the hub (default $JUPYTERHUB_SERVICE_NAME).")

    @default("service_name")
    def _default_service_name(self):
        return os.environ.get("JUPYTERHUB_SERVICE_NAME", "library")


    def initialize(self, argv=None):
        super().initialize(argv)
        config_file = Path(self.data_root) / "library_config.py"
        if config_file.is_file():
            self.load_config_file(str(config_file))
        self.log.setLevel(logging.INFO)
        root = Path(self.data_root).resolve()
        self.sessions = open_database(self.db_url)
        self.reservations = Reservations()  # uploads in flight, which the quota counts
        self.store = TarStore(root / "library")
        # the containers this library starts carry its data root's digest: another hub on the engine has its own
        owner = "library-" + hashlib.sha256(str(root).encode()).hexdigest()[:12]
        self.executor = self.executor_class(owner=owner, parent=self)
        self.validations = Validations(self.sessions, self.store, self.executor, registry=self.registry,
                                       workers=self.workers)
        limits = ArchiveLimits(max_files=self.dataset_max_files, max_bytes=self.dataset_max_bytes,
                        max_ratio=self.dataset_max_ratio)
        self.imports = Imports(self.sessions, root / "library", limits, quota=self.quota)
        self.runs = Runs(self.sessions, root / "library" / "runs", root, self.executor, slots=self.run_slots,
                         per_user=self.run_per_user, register=self.register_model,
                         output_limit=self.run_output_limit)
        self.services = Services(self.sessions, root / "library" / "services", root, self.executor,
                                 health_timeout=self.service_health_timeout, max_answer=self.serve_max_answer_bytes,
                                 trial_idle=self.online_test_idle)
        self.io = ThreadPoolExecutor(8, thread_name_prefix="library-io")
        self.calls = ThreadPoolExecutor(32, thread_name_prefix="library-calls")
        self.code_fills = ThreadPoolExecutor(2, thread_name_prefix="library-code")  # new projects' code, one per user
        project_sources.clean_staging(root / "library" / "uploads")

    def run_output_limit(self, owner: str) -> int:
        """What a run of *owner* may write to its model folder: the model cap, or what their quota leaves."""
        with self.sessions() as session:
            left = self.quota.left(session, Who(owner))
        return MAX_MODEL_BYTES if left is None else min(MAX_MODEL_BYTES, left)

    def register_model(self, session, run, folder: Path):
        """A succeeded run's model, into the registry and against its owner's quota (the runs' callback)."""
        return register(session, self.imports.objects, run, folder, self.quota)

    def offload(self, fn, *args, call: bool = False):
        """Run blocking *fn* (copies, pulls, engine requests) off the event loop.  Calls to users' replicas
        (*call*) have threads of their own: a slow service never holds those that stops, deletes, downloads
        and imports wait for."""
        return asyncio.get_running_loop().run_in_executor(self.calls if call else self.io, fn, *args)

    def seed_presets(self) -> None:
        """Register the static catalog's envs, the samples' datasets and the preset algorithms ``ws up`` built,
        as presets (once; admins edit them afterwards)."""
        with self.sessions() as session:
            known = set(session.scalars(select(BaseEnv.name)))
            for env in load_catalog(self.catalog_dir).values():
                if env.id not in known:
                    session.add(BaseEnv(name=env.id, version="catalog", owner=SYSTEM_OWNER, framework=env.framework,
                                        device=env.device, description=env.description or env.display_name,
                                        visibility=Visibility.preset, status=Status.online, image=env.image,
                                        was_online=True, errors=[], progress="", smoke=False))
            session.commit()
        seeded = dataset_presets.seed(self.sessions, self.imports, SYSTEM_OWNER)
        if seeded:
            self.log.info("importing the preset datasets %s", ", ".join(seeded))
        self.validations.pool.submit(self._seed_algorithms)  # copying the built tars takes a while

    def _seed_algorithms(self) -> None:
        try:
            seeded = algorithm_presets.seed(self, SYSTEM_OWNER)
        except Exception:  # the library serves without them; the log says why
            self.log.exception("seeding the preset algorithms failed")
        else:
            if seeded:
                self.log.info("validating the preset algorithms %s", ", ".join(seeded))

    def servers_using(self, option: str, value: str) -> list[str]:
        """``user/server`` of each running (or starting) server whose spawn option *option* is *value*;
        the hub knows which (blocking: call through :meth:`run`)."""
        hub_api = os.environ.get("JUPYTERHUB_API_URL")
        if not hub_api:
            return []
        r = requests.get(f"{hub_api}/users", params={"state": "active"}, timeout=10,
                         headers={"Authorization": f"token {os.environ['JUPYTERHUB_API_TOKEN']}"})
        r.raise_for_status()
        return [f"{u['name']}/{name}" for u in r.json() for name, s in (u.get("servers") or {}).items()
                if (s.get("user_options") or {}).get(option) == value]

    def check_unused(self, item) -> None:
        """Refuse to delete an env or dataset that a running (or starting) server uses."""
        option, value = ("env", item.name) if isinstance(item, BaseEnv) else ("dataset", item.key)
        users = self.servers_using(option, value)
        if users:
            raise LibraryError(409, "in-use", f"{item.name} is used by running servers ({', '.join(users[:5])}); "
                               f"stop them first, or take the {item.KIND} offline so that no new server uses it.")

    def start_workers(self) -> None:
        """Find the runs and service replicas a previous process left running, then start the run
        scheduler and the service monitor."""
        try:
            self.gpu = self.executor.has_gpu()
            found = self.runs.recover()
        except (EngineUnavailable, EngineError) as e:
            self.log.warning("runs cannot be recovered: %s", e)
        else:
            if found["found"] or found["lost"]:
                self.log.info("runs after a restart: watching %s again, queued %s again", found["found"],
                              found["lost"])
            replicas = self.services.recover()
            if replicas:
                self.log.info("took back %d service replicas after a restart", replicas)
        self.runs.start()
        self.services.start()

    def run_limits(self) -> RunLimits:
        return RunLimits(max_mem_gb=self.run_max_mem_gb, max_cpus=self.run_max_cpus,
                         max_runtime=self.run_max_runtime, gpu=self.gpu)

    gpu = False  # whether the engine has a GPU runtime: asked once, when the service starts

    @property
    def quota(self) -> Quota:
        return Quota(per_user=self.user_quota_bytes, per_file=self.max_upload_bytes, reservations=self.reservations)

    def cookie_secret(self) -> bytes:
        """Kept in the data root, so that browser sessions survive a restart of the service."""
        path = Path(self.data_root).resolve() / "library_cookie_secret"
        write_private(path, os.urandom(32).hex().encode())
        return path.read_bytes().strip()

    def make_app(self, hub_auth) -> web.Application:
        """The routes and request schemas of every resource, under the service's prefix."""
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/library/")
        resources = (algorithm_api, env_api, dataset_api, run_api, model_api, service_api, project_api)
        routes = [("api/openapi.json", base.OpenAPIHandler), ("api/me", base.MeHandler),
                  *(route for resource in resources for route in resource.ROUTES),
                  ("oauth_callback", HubOAuthCallbackHandler), *pages.ROUTES]
        return web.Application(
            [(prefix + path, handler) for path, handler in routes]
            + [(prefix + "static/(.*)", web.StaticFileHandler, {"path": str(pages.STATIC)})],
            hub_auth=hub_auth, service=self, service_name=self.service_name, service_prefix=prefix,
            schemas={name: schema for resource in resources for name, schema in resource.OPENAPI_SCHEMAS.items()},
            own_token=os.environ.get("JUPYTERHUB_API_TOKEN", ""),
            cookie_secret=self.cookie_secret(), default_handler_class=base.NotFoundHandler, templates=pages.templates(),
        )

    def start(self) -> None:
        self.store.clean_incoming()
        try:
            removed = self.executor.remove_leftovers()
        except EngineUnavailable as e:  # the library still serves; validations will say so
            self.log.warning("%s", e)
        else:
            if removed:
                self.log.info("removed %d containers a previous run of the library left", removed)
        resumed = self.validations.recover()
        if resumed:
            self.log.info("resumed validation of %s after a restart", resumed)
        resumed = self.imports.recover()
        if resumed:
            self.log.info("resumed the import of datasets %s after a restart", resumed)
        self.seed_presets()  # after recovering: what it starts is not an interrupted job to start again
        self.start_workers()
        try:
            asyncio.run(self._serve(HubOAuth.instance(cache_max_age=60)))  # the callback handler uses the instance
        finally:
            self.stop_now()

    def stop_now(self) -> None:
        """Exit at once, whatever validations are running: their containers go, and their items are
        resumed on the next start (:meth:`Validations.recover`), so waiting for them buys nothing."""
        try:
            self.executor.remove_leftovers()
        except EngineUnavailable:
            pass
        logging.shutdown()
        os._exit(0)

    def make_server(self, hub_auth) -> HTTPServer:
        """The HTTP server: small bodies only, until an upload handler has authenticated its sender."""
        return HTTPServer(self.make_app(hub_auth), max_body_size=self.max_request_bytes,
                          max_buffer_size=self.max_request_bytes + base.MULTIPART_SLACK)

    async def _serve(self, hub_auth) -> None:
        url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8002"))
        server = self.make_server(hub_auth)
        host, _, port = os.environ.get("WSHUB_LIBRARY_BIND", f"{url.hostname}:{url.port}").rpartition(":")
        server.listen(int(port), host)
        self.log.info("library on %s", url.geturl())
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):  # the hub stops its services with SIGINT, then SIGTERM
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        await stop.wait()
        server.stop()
        self.log.info("library stopped")


def main(argv=None) -> None:
    LibraryService.launch_instance(argv)
