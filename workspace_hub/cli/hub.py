"""``ws up`` and ``ws status``: run the hub on this machine, and say what answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from ..catalog import REPO_ROOT
from .envs import add_build_options, build_options


def _hub_url(port: str | None = None) -> str:
    return f"http://127.0.0.1:{port or os.environ.get('WSHUB_PORT', '8000')}"


def hub_answers(url: str) -> str | None:
    """The hub's version if its API answers at *url* (the hub's address, or its API's, ending in ``/hub/api``),
    else None."""
    api = url if url.rstrip("/").endswith("/hub/api") else f"{url}/hub/api"
    try:
        with urllib.request.urlopen(f"{api.rstrip('/')}/", timeout=3) as r:
            return json.load(r).get("version")
    except (OSError, ValueError):
        return None


def cmd_up(args) -> int:
    """Start dockerd if needed, build the default envs and the preset algorithms if missing, then run the hub."""
    env = dict(os.environ, WSHUB_PROFILE=args.profile, WSHUB_PORT=str(args.port))
    if args.data_root:
        env["WSHUB_DATA_ROOT"] = str(Path(args.data_root).resolve())
    if args.profile == "kubernetes":
        from ..executor.kubernetes import credentials_problem

        problem = credentials_problem(env)
        if problem:
            print(f"ws up: {problem}.", file=sys.stderr)
            return 2
    if args.profile == "docker":
        from ..envbuild import build_envs

        from ..presets import build_presets

        build_envs(args.envs, build_options(args), if_missing=True, log=lambda m: print(m, flush=True))
        build_presets(Path(env.get("WSHUB_DATA_ROOT", "data")), log=lambda m: print(m, flush=True))
    if hub_answers(_hub_url(args.port)):
        print(f"A hub already answers on {_hub_url(args.port)}.")
        return 0
    print(f"Workspace Hub: starting on {_hub_url(args.port)}/hub/login  (profile {args.profile})", flush=True)
    if not env.get("WSHUB_ADMIN_PASSWORD"):
        print("Log in as 'admin'; on the first start the generated password is printed below.", flush=True)
    cmd = [sys.executable, "-m", "jupyterhub", "-f", str(REPO_ROOT / "hub_config" / "jupyterhub_config.py")]
    return run_forwarding_signals(cmd, env)


def run_forwarding_signals(cmd: list[str], env: dict) -> int:
    """Run *cmd*; SIGTERM and SIGINT go to it, and ``ws up`` exits when it does, never leaving it orphaned.

    Exit status: 0 when a signal asked for the stop and the child stopped, else the child's own."""
    child = subprocess.Popen(cmd, env=env)
    asked = []

    def forward(number, _frame):
        asked.append(number)
        child.send_signal(number)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    status = child.wait()
    return 0 if asked else status


def cmd_status(args) -> int:
    """Inside a workspace: the project; on the host: engine, images and hub."""
    if os.environ.get("WORKSPACE_PROJECT"):
        print(f"project: {os.environ['WORKSPACE_PROJECT']}")
        print(f"env:     {os.environ.get('WORKSPACE_ENV', '?')}")
        print(f"dataset: {os.environ.get('WORKSPACE_DATASET') or '(none)'}")
        print(f"root:    {os.environ.get('WORKSPACE_ROOT', '/project')}")
        api = os.environ.get("JUPYTERHUB_API_URL", "")
        version = hub_answers(api) if api else None
        where = api or "(no JUPYTERHUB_API_URL in this shell)"
        print(f"hub:     JupyterHub {version} answers at {api}" if version else f"hub:     not answering at {where}")
        return 0 if version else 1
    version = hub_answers(_hub_url(args.port))
    print(f"hub:     {'JupyterHub ' + version + ' at ' + _hub_url(args.port) if version else 'not answering on ' + _hub_url(args.port)}")
    from ..executor import EngineUnavailable
    from ..executor.docker import engine

    try:
        engine()
        print("docker:  engine answers")
    except EngineUnavailable as e:
        print(f"docker:  {e}")
    return 0 if version else 1


def add_parser(sub) -> None:
    up = sub.add_parser("up", help="start dockerd if needed, build missing env images and preset algorithms, run the hub")
    up.add_argument("--profile", choices=["docker", "local", "kubernetes"], default=os.environ.get("WSHUB_PROFILE", "docker"))
    up.add_argument("--port", type=int, default=int(os.environ.get("WSHUB_PORT", "8000")))
    up.add_argument("--data-root", help="workspace files and hub state (default ./data)")
    up.add_argument("--envs", type=lambda text: [e for e in text.split(",") if e], default=["python"],
                    help="env images to build when missing, e.g. python,pytorch (default: python)")
    add_build_options(up)
    up.set_defaults(func=cmd_up)

    status = sub.add_parser("status", help="show the project (in a workspace) or the hub and engine (host)")
    status.add_argument("--port", type=int, default=None)
    status.set_defaults(func=cmd_status)
