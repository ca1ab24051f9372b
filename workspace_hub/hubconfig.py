"""Embedded defaults for ``hub_config/jupyterhub_config.py``.

Everything here is plain JupyterHub configuration; sites override any of it in
their own config file after :func:`configure` runs, or through the
environment variables below (all optional):

============================  =================================================
``WSHUB_PROFILE``             ``docker`` (default), ``local`` or ``kubernetes`` (networking and
                              the database then come from Zero to JupyterHub's values)
``WSHUB_DATA_ROOT``           workspace files and hub state (default ``./data``)
``WSHUB_PORT``                public port on 127.0.0.1 (default 8000; the proxy API uses +1)
``WSHUB_HUB_PORT``            internal hub API port (default 8081)
``WSHUB_DB_URL``              hub database URL (default SQLite in the data root)
``WSHUB_ADMIN_PASSWORD``      password of the first admin (default: generated)
``WSHUB_SERVICE_TOKEN``       token of an admin service ``ws-admin``, for automation
``WSHUB_CULL_TIMEOUT``        seconds before an idle server is stopped (default 3600)
``WSHUB_LIBRARY_PORT``        port of the library on 127.0.0.1 (default: port + 2)
``WSHUB_LIBRARY_DB_URL``      library database URL (default SQLite in the data root)
``WSHUB_LIBRARY_REGISTRY``    registry (host:port) the library pushes validated images to
``WSHUB_LIBRARY_BIND``        address the library listens on (set on Kubernetes: ``0.0.0.0:8002``)
``WSHUB_LIBRARY_URL``         set in workspaces: where ``ws publish`` and ``ws algorithms`` find the library
``WSHUB_BASE_IMAGE_DIR``      in a workspace: the env's ``docker save`` folder ``ws build`` reads
``WSHUB_TEMPLATES_DIR``       the project templates ``ws new`` bakes (default: the checkout's or the image's)
``WSHUB_IMPORT_MAX_BYTES``    largest repository ``ws import git`` clones (default 1 GiB)
``WSHUB_EXTRAS``              ``scripts/install.sh``: extra dependency groups (``test`` for the test tools)
``WSHUB_TEST_POSTGRES_URL``   tests: a Postgres database for the hub and the library (``.ci/run`` sets it)
============================  =================================================
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
from pathlib import Path

from .catalog import REPO_ROOT
from .files import write_private

PROFILES = {
    "docker": "workspace_hub.spawner.DockerWorkspaceSpawner",
    "local": "workspace_hub.spawner.LocalWorkspaceSpawner",
    "kubernetes": "workspace_hub.spawner.KubeWorkspaceSpawner",
}
HANDBOOK_DIR = REPO_ROOT / "help_doc"


def install_handbook(data_root: Path) -> None:
    """Copy the handbook and the example notebooks to ``<data_root>/help_doc`` (mounted read-only)."""
    shutil.copytree(HANDBOOK_DIR, data_root / "help_doc", dirs_exist_ok=True)
    shutil.copytree(REPO_ROOT / "notebooks", data_root / "help_doc" / "notebooks", dirs_exist_ok=True)


def restore_interrupts() -> None:
    """A hub started in the background by a non-interactive shell (``cmd &``, as a CI script or an init
    script may) inherits SIGINT ignored, and so do the services it starts: JupyterHub stops each with SIGINT,
    then waits out its timeouts before SIGTERM, some 15 s a service at every stop.  The hub takes SIGINT back,
    and its children get the default again."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def configure(c, environ=os.environ) -> None:
    """Apply Workspace Hub's defaults to the JupyterHub config object *c*."""
    restore_interrupts()
    profile = environ.get("WSHUB_PROFILE", "docker")
    if profile not in PROFILES:
        raise SystemExit(f"WSHUB_PROFILE={profile!r} is unknown: use one of {', '.join(PROFILES)}.")
    data_root = Path(environ.get("WSHUB_DATA_ROOT", "data")).resolve()
    data_root.mkdir(parents=True, exist_ok=True)
    install_handbook(data_root)
    legacy = sorted(p.name for p in (data_root / "datasets").glob("*") if p.is_dir())
    if legacy:  # before the library held datasets, any folder here was one; they are no longer offered
        print(f"Workspace Hub: {len(legacy)} folders in {data_root / 'datasets'} ({', '.join(legacy[:5])}) are not "
              "offered any more; import each as a dataset: ws datasets upload <folder> --name <name> --format dir",
              file=sys.stderr)

    if profile != "kubernetes":  # on Kubernetes, Zero to JupyterHub owns networking and the database
        port = int(environ.get("WSHUB_PORT", "8000"))
        c.JupyterHub.bind_url = f"http://127.0.0.1:{port}"
        c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{port + 1}"
        c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{environ.get('WSHUB_HUB_PORT', '8081')}"
        if not environ.get("WSHUB_DB_URL"):  # the hub's database and secrets are private from their first byte
            write_private(data_root / "jupyterhub.sqlite", b"")
        write_private(data_root / "jupyterhub_cookie_secret", secrets.token_hex(32).encode())
        c.JupyterHub.db_url = environ.get("WSHUB_DB_URL", f"sqlite:///{data_root / 'jupyterhub.sqlite'}")
        c.JupyterHub.cookie_secret_file = str(data_root / "jupyterhub_cookie_secret")
        c.ConfigurableHTTPProxy.pid_file = str(data_root / "jupyterhub-proxy.pid")
    # Workspaces keep running while the hub restarts or upgrades.
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = 20
    # Projects are named servers: after login, land on the Projects page (hub_config/templates/home.html,
    # JupyterHub's home page extended through its own template mechanism).
    c.JupyterHub.default_url = "/hub/home"
    c.JupyterHub.template_paths = [str(REPO_ROOT / "hub_config" / "templates")]

    c.JupyterHub.authenticator_class = "workspace_hub.auth.WorkspaceAuthenticator"
    # NativeAuthenticator lets in only the users an admin authorized.
    c.Authenticator.allow_all = True

    c.JupyterHub.spawner_class = PROFILES[profile]
    c.WorkspaceMixin.data_root = str(data_root)
    c.Spawner.start_timeout = 120
    c.Spawner.http_timeout = 60

    services = [
        {
            "name": "idle-culler",
            "command": [sys.executable, "-m", "jupyterhub_idle_culler",
                        f"--timeout={environ.get('WSHUB_CULL_TIMEOUT', '3600')}"],
        }
    ]
    roles = [
        {
            "name": "idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        }
    ]
    services.append(library_service(c, environ, data_root, profile))
    roles += [
        # every user may use the library (and the tokens of their servers may too)
        {"name": "user", "scopes": ["self", "access:services!service=library"]},
        # the library asks the hub which servers run which env before deleting an env
        {"name": "library", "scopes": ["list:users", "read:users", "read:servers",
                                        "access:services!service=library"], "services": ["library"]},
    ]
    if environ.get("WSHUB_SERVICE_TOKEN"):
        services.append({"name": "ws-admin", "api_token": environ["WSHUB_SERVICE_TOKEN"]})
        roles.append({"name": "ws-admin", "scopes": ["admin:users", "admin:servers", "tokens",
                                                      "admin-ui", "list:users", "read:users",
                                                      "list:services", "read:services"],
                      "services": ["ws-admin"]})
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles


def library_service(c, environ, data_root: Path, profile: str) -> dict:
    """The library (``workspace_library``), and the spawner settings that use it."""
    token_file = data_root / "library_api_token"
    write_private(token_file, secrets.token_hex(32).encode())
    token = token_file.read_text().strip()
    environment = {"WSHUB_DATA_ROOT": str(data_root), "WSHUB_PROFILE": profile}
    if profile == "kubernetes":  # the proxy and user pods reach it through the hub pod's extra port (values.yaml)
        url = "http://hub:8002"
        environment["WSHUB_LIBRARY_BIND"] = "0.0.0.0:8002"
    else:
        port = int(environ.get("WSHUB_LIBRARY_PORT", int(environ.get("WSHUB_PORT", "8000")) + 2))
        url = f"http://127.0.0.1:{port}"
    c.WorkspaceMixin.library_url = f"{url}/services/library/"
    c.WorkspaceMixin.library_token = token
    # $JUPYTERHUB_API_TOKEN in a workspace identifies its user to the library: `ws publish` needs no login
    c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server",
                                     "access:services!service=library"]
    c.Spawner.environment = {"WSHUB_LIBRARY_URL": f"{url}/services/library/"}
    for name in ("WSHUB_LIBRARY_DB_URL", "WSHUB_LIBRARY_REGISTRY"):
        if environ.get(name):
            environment[name] = environ[name]
    return {
        "name": "library",
        "display": True,
        "url": url,
        "api_token": token,
        "oauth_no_confirm": True,
        "command": [sys.executable, "-m", "workspace_library"],
        "environment": environment,
        "info": {"description": "Algorithm and base-environment library"},
    }
