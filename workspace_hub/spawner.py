"""Workspace spawners: one mixin holds the spawn logic, each backend only adapts it.

:class:`WorkspaceMixin` owns everything that must not differ between profiles:
the spawn form, validation of the project name, base env and dataset, the
project's folders, the mount plan, limits and the workspace environment
variables.  A backend implements :meth:`WorkspaceMixin.apply_workspace`, which
turns a :class:`Workspace` (plain data) into its own traits:

- :class:`DockerWorkspaceSpawner`: DockerSpawner with host networking;
- :class:`LocalWorkspaceSpawner`: a local process, for laptops and fast tests;
- :class:`KubeWorkspaceSpawner`: KubeSpawner with the mounts as PVC subPaths.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from docker.types import DeviceRequest
from dockerspawner import DockerSpawner
from jupyterhub.spawner import SimpleLocalProcessSpawner
from jupyterhub.utils import random_port
from kubespawner import KubeSpawner
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.httputil import url_concat
from traitlets import Bool, Dict, Float, Integer, Unicode, default
from traitlets.config import Configurable

from .catalog import DEFAULT_CATALOG_DIR, IMAGE_PREFIX, WorkspaceEnv, load_catalog
from .envbuild import LABEL_PREFIX as ENV_LABEL_PREFIX
from .contract import DATASET_DIR, WORKSPACE_ROOT
from .projects import (
    DatasetMount,
    InvalidChoice,
    Mount,
    base_image_export,
    Project,
    check_project_name,
    migrate_user_dir,
    mount_plan,
    pinned_image,
    user_dir_name,
)


SPAWN_OPTIONS = {"env", "dataset"}
PLATFORM_IMAGES = ("sha256:", IMAGE_PREFIX, "envs/")  # never pulled


@dataclass(frozen=True)
class Workspace:
    """What one spawn resolved to: the project, its env, dataset, mounts and limits."""

    project: Project
    env: WorkspaceEnv
    dataset: DatasetMount | None
    mounts: list[Mount]
    mem_limit: str | None
    cpu_limit: float | None


@dataclass(frozen=True)
class Offer:
    """The base envs a user may pick (in a stable order), those shown but not built, and a notice."""

    envs: list[WorkspaceEnv]
    unbuilt: list[WorkspaceEnv]
    notice: str | None = None
    datasets: list[DatasetMount] = ()


def with_version(display_name: str, version: str) -> str:
    """``PyTorch (CPU), torch 2.13.0``; the name alone when it already says the version (``Python 3.11``)."""
    number = version.rsplit(" ", 1)[-1]
    if not version or ".".join(number.split(".")[:2]) in display_name:
        return display_name
    return f"{display_name}, {version}"


def build_hint(env: WorkspaceEnv) -> str:
    """How an admin makes *env* startable."""
    if env.image.startswith(IMAGE_PREFIX):
        return f"an admin builds it with: ws envs build {env.id}"
    return f"its image {env.image} is not in the engine; publish the env again"


async def render_options_form(spawner: "WorkspaceMixin") -> str:
    """The spawn form: base env and optional dataset (the name is the server name).

    Envs whose image is not built are listed, disabled, with the command that builds them."""
    record = spawner.project.load_record() if spawner.name else None
    chosen_env = (record or {}).get("env") or spawner.default_env
    offer = await spawner.offered_envs()
    envs = "".join(
        f'<option value="{html.escape(env.id)}"{" selected" if env.id == chosen_env else ""}>'
        f"{html.escape(env.display_name)} ({env.device})</option>"
        for env in offer.envs
    ) + "".join(
        f'<option value="{html.escape(env.id)}" disabled>{html.escape(env.display_name)} ({env.device}), '
        f"not built: {html.escape(build_hint(env))}</option>"
        for env in offer.unbuilt
    )
    chosen_dataset = (record or {}).get("dataset")
    datasets = '<option value="">(no dataset)</option>' + "".join(
        f'<option value="{html.escape(d.key)}"{" selected" if d.key == chosen_dataset else ""}>'
        f"{html.escape(d.label)}</option>"
        for d in offer.datasets
    )
    notice = f'<div class="alert alert-warning" id="ws-notice">{html.escape(offer.notice)}</div>' \
        if offer.notice else ""
    return f"""{notice}
<div class="form-group mb-3">
  <label for="ws-env" class="form-label">Base environment</label>
  <select id="ws-env" name="env" class="form-select form-control">{envs}</select>
</div>
<div class="form-group mb-3">
  <label for="ws-dataset" class="form-label">Dataset (mounted read-only at {DATASET_DIR})</label>
  <select id="ws-dataset" name="dataset" class="form-select form-control">{datasets}</select>
</div>
"""


async def apply_workspace_options(spawner: "WorkspaceMixin", user_options: dict) -> None:
    """``Spawner.apply_user_options`` hook: validate, then hand the result to the backend.

    An :class:`InvalidChoice` becomes HTTP 400 with its message, on the form and the API.
    """
    try:
        workspace = await spawner.resolve_workspace(user_options or {})
    except InvalidChoice as e:
        raise web.HTTPError(400, str(e), reason=str(e)) from None
    # what the server really uses, so the hub's server list (and the library's "in use") tells the truth
    resolved = {"env": workspace.env.id, "dataset": workspace.dataset.key if workspace.dataset else ""}
    spawner.user_options = resolved
    if getattr(spawner.orm_spawner, "user_options", None) is not None:
        spawner.orm_spawner.user_options = resolved
    spawner.workspace = workspace
    spawner.apply_workspace(workspace)


class WorkspaceMixin(Configurable):
    """Spawn logic shared by every workspace spawner."""

    data_root = Unicode(
        config=True,
        help="""Folder holding all workspace files (users/, datasets/, help_doc/).

        Defaults to $WSHUB_DATA_ROOT, else ./data.  Relative paths are resolved
        against the hub's working directory.""",
    )

    @default("data_root")
    def _default_data_root(self):
        return os.environ.get("WSHUB_DATA_ROOT", "data")

    catalog_dir = Unicode(
        str(DEFAULT_CATALOG_DIR),
        config=True,
        help="Folder of the base-environment catalog (one env.yaml per env).",
    )

    default_env = Unicode(
        "python", config=True, help="Base env used when a spawn request names none."
    )

    workspace_uid = Integer(1000, config=True, help="uid of the workspace user; owns the project folders.")
    workspace_gid = Integer(1000, config=True, help="gid of the workspace user.")

    limit_overrides = Dict(
        config=True,
        help="""Per-env overrides of the catalog limits, set by the admin, e.g.
        ``{"python": {"mem": "8G", "cpu": 4}}``.  The key ``"*"`` applies to every env.""",
    )

    library_url = Unicode(
        "",
        config=True,
        help="""URL of the library (ending in ``/services/library/``).  When set, the
        spawn form lists the envs that service says the user can see and that are online,
        instead of the static catalog alone.  Empty: the static catalog only.""",
    )

    library_timeout = Float(5, config=True, help="Seconds to wait for the library's env list before the "
                                                 "form falls back to the static catalog (with a notice).")

    library_token = Unicode("", config=True, help="API token of the library, to ask it on a user's behalf.")

    registered_env_limits = Dict(
        {"mem": "4G", "cpu": 2.0},
        config=True,
        help="""Limits of envs registered in the library (outside the catalog, which sets its own);
        ``limit_overrides`` still applies on top.""",
    )

    gpu_available = Bool(
        False,
        config=True,
        help="Whether GPU envs are offered on the spawn form.  Docker detects this from the engine.",
    )

    @default("options_form")
    def _default_options_form(self):
        return render_options_form

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return apply_workspace_options

    @default("notebook_dir")
    def _default_notebook_dir(self):
        return WORKSPACE_ROOT

    @default("default_url")
    def _default_default_url(self):
        return "/lab"

    @property
    def data_path(self) -> Path:
        return Path(self.data_root).resolve()

    @property
    def project(self) -> Project:
        return Project(self.data_path, self.user.name, self.name)

    def catalog(self) -> dict[str, WorkspaceEnv]:
        return load_catalog(self.catalog_dir)

    async def offered_envs(self) -> Offer:
        """The envs for this user: the library's online ones (or the catalog if it does not answer),
        GPU envs only where a GPU runtime exists, split by whether their image is built; and the online
        datasets the user may mount (none when the library does not answer)."""
        notice = None
        envs, datasets = await asyncio.gather(self.library_envs(), self.library_datasets())
        if envs is None:
            envs = list(self.catalog().values())
            if self.library_url:
                notice = ("The library did not answer, so only the built-in environments are listed, and no "
                          "datasets; what is registered in the library is missing until it is back.")
        gpu = await self.gpu_offered()
        envs = [e for e in envs if not e.gpu or gpu]
        versions = await asyncio.gather(*(self.env_version(e) for e in envs))
        offered = [replace(e, display_name=with_version(e.display_name, v)) for e, v in zip(envs, versions)
                   if v is not None]
        return Offer(offered, [e for e, v in zip(envs, versions) if v is None], notice, datasets or [])

    async def gpu_offered(self) -> bool:
        """Whether GPU envs are offered: ``gpu_available``; backends that can ask their engine (Docker) do so
        when it is not set."""
        return self.gpu_available

    async def env_version(self, env: WorkspaceEnv) -> str | None:
        """The framework version *env*'s built image reports ("" when unknown), or None when its image
        cannot start here.  Backends that can tell (Docker) override this; others assume it is built."""
        return ""

    async def library_envs(self) -> list[WorkspaceEnv] | None:
        """The online envs the library lets this user see; None if it does not answer."""
        items = await self.library_list("envs")
        if items is None:
            return None
        catalog = self.catalog()
        presets = [catalog[i["name"]] for i in items if i["name"] in catalog and i["visibility"] == "preset"]
        presets.sort(key=lambda env: list(catalog).index(env.id))  # the catalog's order, whatever the library says
        registered = []
        for item in sorted(items, key=lambda i: (i["owner"] != self.user.name, i["name"])):
            if item["name"] in catalog or not item["image"]:
                continue
            by = "" if item["owner"] == self.user.name or item["visibility"] == "preset" else f", by {item['owner']}"
            registered.append(WorkspaceEnv(
                id=item["name"], display_name=f"{item['name']} {item['version']}{by}",
                framework=item["framework"], device=item["device"], description=item["description"],
                image=item["image"], mem_limit=self.registered_env_limits.get("mem"),
                cpu_limit=self.registered_env_limits.get("cpu")))
        return presets + registered

    async def library_datasets(self) -> list[DatasetMount] | None:
        """The online dataset versions the library lets this user see, with their read-only trees."""
        items = await self.library_list("datasets")
        if items is None:
            return None
        items.sort(key=lambda i: (i["owner"] != self.user.name, i["name"], i["version"]))
        return [DatasetMount(
            key=i["key"], mounts=i["mounts"],
            label=f"{i['name']} {i['version']} ({i['format']})"
                  + ("" if i["owner"] == self.user.name or i["visibility"] == "preset" else f", by {i['owner']}"))
            for i in items if i["mounts"].get("train")]

    async def library_list(self, kind: str) -> list[dict] | None:
        """The online *kind* (envs, datasets) this user may see; None (with a warning) if the library does not
        answer.  Asked with AsyncHTTPClient, never blocking the hub's loop; the library recognizes its own
        token without asking the hub back, so the hub never waits on a service that waits on it."""
        if not self.library_url:
            return None
        url = url_concat(f"{self.library_url}api/{kind}",
                         {"for_user": self.user.name, "status": "online", "per_page": "100"})
        try:
            response = await AsyncHTTPClient().fetch(url, headers={"Authorization": f"token {self.library_token}"},
                                                     request_timeout=self.library_timeout)
            return list(json.loads(response.body)["items"])
        except (HTTPClientError, OSError, ValueError, KeyError, TypeError) as e:
            self.log.warning("The library did not list %s (%s).", kind, e)
            return None

    def project_of(self, name: str) -> dict:
        """What the projects page shows of the user's project *name*: its env and dataset, as recorded."""
        return Project(self.data_path, self.user.name, name).load_record() or {}

    def options_from_form(self, formdata):
        return {key: formdata.get(key, [""])[0].strip() for key in ("env", "dataset")}

    async def resolve_workspace(self, user_options: dict) -> Workspace:
        """Check the spawn options against the rules; return the resolved workspace."""
        if not isinstance(user_options, dict):
            raise InvalidChoice("user_options must be a JSON object with 'env' and optional 'dataset'.")
        unknown = sorted(set(user_options) - SPAWN_OPTIONS)
        if unknown:
            raise InvalidChoice(f"Unknown spawn option {unknown[0][:40]!r}: a project takes only "
                                f"{' and '.join(sorted(SPAWN_OPTIONS))}; limits and mounts are the admin's settings.")
        project = Project(self.data_path, self.user.name, check_project_name(self.name))
        record = project.load_record() or {}
        env_id = user_options.get("env") or record.get("env") or self.default_env
        offer = await self.offered_envs()
        envs = {e.id: e for e in offer.envs}
        unbuilt = {e.id: e for e in offer.unbuilt}
        if env_id in unbuilt:
            raise InvalidChoice(f"Base env {env_id!r} is not built on this hub: {build_hint(unbuilt[env_id])}.")
        if env_id not in envs:
            raise InvalidChoice(
                f"Unknown base env {str(env_id)[:40]!r}: choose one of {', '.join(envs) or '(none built)'}."
            )
        if record.get("env") and record["env"] != env_id:
            raise InvalidChoice(
                f"A project named {project.name!r} already exists with base env {record['env']!r}. "
                f"Start it with that env, or choose another name for a new project."
            )
        dataset = None
        key = user_options.get("dataset", record.get("dataset")) or None
        if key is not None:
            datasets = {d.key: d for d in offer.datasets}
            if key not in datasets:
                raise InvalidChoice(
                    f"Dataset {str(key)[:40]!r} is not an online dataset you may use"
                    + (" (the project was made with it; it is offline or gone)" if key == record.get("dataset")
                       else "") + ": choose one on the form, or start with no dataset (dataset '').")
            dataset = datasets[key]
        env = envs[env_id]
        limits = {**self.limit_overrides.get("*", {}), **self.limit_overrides.get(env.id, {})}
        mem, cpu = limits.get("mem", env.mem_limit), limits.get("cpu", env.cpu_limit)
        return Workspace(
            project=project,
            env=env,
            dataset=dataset,
            mounts=mount_plan(project, dataset, base_image_export(self.data_path, env.id)),
            mem_limit=str(mem) if mem else None,
            cpu_limit=float(cpu) if cpu else None,
        )

    def prepare_host_dirs(self, workspace: Workspace) -> None:
        """Create the project folders, owned by the workspace user, and record its choices."""
        moved = migrate_user_dir(self.data_path, self.user.name, self._hub_has_user)
        if moved:
            self.log.info("moved the folder of %s to %s (one folder per user)", self.user.name, moved)
        workspace.project.create_dirs(self.workspace_uid, self.workspace_gid)
        workspace.project.save_record(workspace.env.id, workspace.dataset, workspace.env.display_name)

    def _hub_has_user(self, name: str) -> bool:
        from jupyterhub import orm

        return orm.User.find(self.user.db, name) is not None

    def apply_workspace(self, workspace: Workspace) -> None:
        """Turn *workspace* into backend traits.  Each backend implements this."""
        raise NotImplementedError

    async def wait_until_answering(self, ip: str, port: int) -> None:
        """Return as soon as the new server answers HTTP, polling every 50 ms.

        The hub then finds it up at its first check, instead of after its
        exponential backoff (0.2, 0.4, 0.8 ... s), which can add seconds to a spawn.
        A server that dies or never answers is left to the hub's own checks.
        """
        url = f"http://{ip}:{port}{self.server.base_url if self.server else '/'}api"
        client = AsyncHTTPClient()
        deadline = time.monotonic() + self.http_timeout
        next_poll = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                await client.fetch(url, request_timeout=1, raise_error=False)
                return
            except (OSError, HTTPClientError):
                await asyncio.sleep(0.05)
            if time.monotonic() > next_poll:  # about once a second: has the server died?
                if await self.poll() is not None:
                    return
                next_poll = time.monotonic() + 1

    def get_env(self):
        env = super().get_env()
        workspace = getattr(self, "workspace", None)
        if workspace:
            env.update(
                WORKSPACE_PROJECT=workspace.project.name,
                WORKSPACE_ENV=workspace.env.id,
                WORKSPACE_DATASET=workspace.dataset.label if workspace.dataset else "",
                WORKSPACE_ROOT=WORKSPACE_ROOT,
            )
        return env


class HostNetworkDockerSpawner(DockerSpawner):
    """DockerSpawner on the host network by default: a free loopback port per server.

    This is plain DockerSpawner plus the override its own docstring asks for
    with ``network_mode=host``; the spawn benchmark uses it as the baseline.
    ``network_name`` is the site's setting: a Docker network of its own (with
    ``c.JupyterHub.hub_connect_ip``) keeps workspaces off the host's loopback,
    and then DockerSpawner's own addressing applies (see the README's Security).
    """

    @default("network_name")
    def _default_network_name(self):
        return "host"

    @property
    def on_host_network(self) -> bool:
        return self.network_name == "host"

    @default("use_internal_ip")
    def _default_use_internal_ip(self):
        # no port bindings: the server listens on the host's loopback, or on its network's address
        return True

    @default("ip")
    def _default_ip(self):
        return "127.0.0.1" if self.on_host_network else "0.0.0.0"

    @default("remove")
    def _default_remove(self):
        return True

    async def start(self):
        if self.on_host_network:
            self.port = random_port()
        return await super().start()

    async def get_ip_and_port(self):
        if self.on_host_network:
            return self.ip, self.port
        return await super().get_ip_and_port()


class DockerWorkspaceSpawner(WorkspaceMixin, HostNetworkDockerSpawner):
    """Workspaces as containers on the local Docker engine."""

    @default("name_template")
    def _default_name_template(self):
        return "workspace-{username}--{servername}"

    @default("extra_create_kwargs")
    def _default_extra_create_kwargs(self):
        return {"user": f"{self.workspace_uid}:{self.workspace_gid}", "working_dir": WORKSPACE_ROOT}

    _engine_has_gpu: bool | None = None  # asked once per hub process

    async def start(self):
        ip, port = await super().start()
        await self.wait_until_answering(ip, port)
        return ip, port

    async def env_version(self, env: WorkspaceEnv) -> str | None:
        """None when the engine lacks the image the env starts (its pinned ID, or its tag; platform images
        are never pulled), else the framework version `ws envs build` wrote on it ("" without that label)."""
        from docker.errors import DockerException, ImageNotFound

        try:
            image = await self.docker("inspect_image", pinned_image(self.data_path, env))
        except ImageNotFound:
            return None
        except DockerException:  # the engine itself is unwell: the spawn will say so
            return ""
        labels = ((image or {}).get("Config") or {}).get("Labels") or {}
        version = labels.get(f"{ENV_LABEL_PREFIX}framework-version")
        return f"{env.framework} {version}" if version else ""

    async def gpu_offered(self) -> bool:
        """``gpu_available`` if the site set it, else whether the engine has the NVIDIA runtime (asked once,
        through DockerSpawner's thread pool, never on the hub's event loop)."""
        if self.trait_has_value("gpu_available"):
            return self.gpu_available
        cls = DockerWorkspaceSpawner
        if cls._engine_has_gpu is None:
            try:
                cls._engine_has_gpu = "nvidia" in ((await self.docker("info")).get("Runtimes") or {})
            except Exception:  # engine unreachable: offer no GPU envs
                return False
        return cls._engine_has_gpu

    def apply_workspace(self, workspace: Workspace) -> None:
        self.prepare_host_dirs(workspace)
        # a catalog env starts the image ID `ws envs build` recorded, whatever its tag says now; the
        # platform's own images are built here, never pulled: a name on a registry cannot stand in
        self.image = pinned_image(workspace.project.data_root, workspace.env)
        self.pull_policy = "never" if self.image.startswith(PLATFORM_IMAGES) else "ifnotpresent"
        self.volumes = {
            str(workspace.project.data_root / m.source): {
                "bind": m.target,
                "mode": "ro" if m.read_only else "rw",
            }
            for m in workspace.mounts
        }
        self.mem_limit = workspace.mem_limit
        self.cpu_limit = workspace.cpu_limit
        host_config = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]}
        if workspace.env.gpu:
            host_config["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
        self.extra_host_config = host_config


class LocalWorkspaceSpawner(WorkspaceMixin, SimpleLocalProcessSpawner):
    """Workspaces as local processes, with the same folder layout and no Docker.

    The project folder itself is the workspace root; the handbook and the dataset
    appear in it as symlinks.  Read-only is not enforced: use it on laptops and in tests.
    """

    @default("cmd")
    def _default_cmd(self):
        # the hub's own environment, whether or not its bin/ is on PATH
        return [str(Path(sys.executable).parent / "jupyterhub-singleuser")]

    def apply_workspace(self, workspace: Workspace) -> None:
        self.prepare_host_dirs(workspace)
        root = workspace.project.path
        links = {m.target.rsplit("/", 1)[1]: m for m in workspace.mounts if m.read_only}
        for name in ("help_doc", "dataset", "dataset_test"):
            link = root / name
            if link.is_symlink():
                link.unlink()
            if name in links:
                link.symlink_to(workspace.project.data_root / links[name].source)
        self.notebook_dir = str(root)
        self.home_dir = str(root / ".home")

    def get_args(self):
        args = super().get_args()
        return args + ["--allow-root"] if os.geteuid() == 0 else args


class KubeWorkspaceSpawner(WorkspaceMixin, KubeSpawner):
    """Workspaces as pods: every mount is a subPath of one shared data volume."""

    data_claim_name = Unicode(
        "workspace-data",
        config=True,
        help="PersistentVolumeClaim (ReadWriteMany) holding the data root's contents.",
    )

    gpu_resource = Unicode(
        "nvidia.com/gpu", config=True, help="Extended resource requested by GPU envs."
    )

    init_image = Unicode(
        "busybox:1.36",
        config=True,
        help="""Image of the init container that creates a project's folders (it needs ``mkdir``).
        It is the site's choice, never a user's env, and mounts only that user's folder.""",
    )

    def apply_workspace(self, workspace: Workspace) -> None:
        volume = "workspace-data"
        self.image = workspace.env.image
        self.uid = self.workspace_uid
        self.gid = self.workspace_gid
        self.fs_gid = self.workspace_gid
        self.working_dir = WORKSPACE_ROOT
        self.volumes = [{"name": volume, "persistentVolumeClaim": {"claimName": self.data_claim_name}}]
        self.volume_mounts = [
            {"name": volume, "mountPath": m.target, "subPath": m.source, "readOnly": m.read_only}
            for m in workspace.mounts
        ]
        user_dir = f"users/{user_dir_name(self.user.name)}"
        writable = [m.source.removeprefix(user_dir + "/") for m in workspace.mounts if not m.read_only]
        # The pod cannot chown host folders, so an init container creates them as uid 1000.  It runs
        # the site's own small image, never the user's env, and sees only this user's folder.
        self.init_containers = [
            {
                "name": "project-dirs",
                "image": self.init_image,
                "command": ["mkdir", "-p", *(f"/data/{path}" for path in writable)],
                "securityContext": {"runAsUser": self.workspace_uid, "runAsGroup": self.workspace_gid,
                                    "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": volume, "mountPath": "/data", "subPath": user_dir}],
            }
        ]
        self.mem_limit = workspace.mem_limit
        self.cpu_limit = workspace.cpu_limit
        self.extra_resource_limits = {self.gpu_resource: "1"} if workspace.env.gpu else {}
