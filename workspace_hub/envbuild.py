"""Build the base-environment images on the local Docker engine.

The layers, each cached by the engine so a no-change rebuild takes seconds:

1. ``workspace-hub/os:bookworm``: Debian from ``mmdebstrap`` + ``docker import``
   (no registry needed), unless a site passes ``--base-image``;
2. ``workspace-hub/layer-base``: ``base-envs/base``, JupyterLab and the data tools
   (GPU envs rebuild it on their CUDA ``base_image``);
3. ``workspace-hub/layer-<env>``: ``base-envs/<env>``, the framework, on the base
   or on its ``parent`` env's layer (keras builds on tensorflow);
4. ``workspace-hub/<env>:latest``: ``base-envs/workspace``, the ``ws`` CLI and the
   kernel, then a metadata-only layer with version labels read from the image.

docker-py's low-level ``build`` streams the engine's output, which is the
progress display; no extra library is needed for that.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import docker
from docker.errors import APIError, ImageNotFound

from .catalog import DEFAULT_CATALOG_DIR, REPO_ROOT, WorkspaceEnv, load_catalog
from .errors import WorkspaceHubError
from .executor.docker import engine
from .projects import pinned_image

OS_IMAGE = "workspace-hub/os:bookworm"
OS_PACKAGES = ("python3", "python3-venv", "ca-certificates", "git", "make")
# workspaces run the hub's own JupyterHub version (pinned once, in pyproject.toml's hub extra)
JUPYTERHUB_VERSION = metadata.version("jupyterhub")
LABEL_PREFIX = "ai.workspace-hub."
EXPORT_DIR = "base-images"


class BuildError(WorkspaceHubError):
    """A build step failed; the message says which and what to do."""


@dataclass(frozen=True)
class BuildOptions:
    """Site options for reaching package indexes from inside builds."""

    pip_index_url: str = ""
    ca_bundle: str = ""
    base_image: str = ""
    wheels: str = ""
    data_root: str = ""  # where the export for `ws build` goes (default $WSHUB_DATA_ROOT or ./data)


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except ImageNotFound:
        return False


def bootstrap_os_image(client: docker.DockerClient, log: Callable[[str], None]) -> str:
    """Import a minimal Debian built with mmdebstrap, once."""
    if image_exists(client, OS_IMAGE):
        return OS_IMAGE
    if not shutil.which("mmdebstrap"):
        raise BuildError("mmdebstrap is missing: apt-get install -y mmdebstrap, or pass --base-image.")
    with tempfile.TemporaryDirectory() as tmp:
        tar = Path(tmp) / "os.tar"
        log(f"bootstrapping Debian bookworm with mmdebstrap ({', '.join(OS_PACKAGES)})")
        run = subprocess.run(
            ["mmdebstrap", "--variant=minbase", f"--include={','.join(OS_PACKAGES)}", "bookworm", str(tar)],
            capture_output=True,
            text=True,
        )
        if run.returncode:
            raise BuildError(f"mmdebstrap failed; is the Debian mirror reachable?\n{run.stderr[-2000:]}")
        log(f"importing {OS_IMAGE}")
        repository, tag = OS_IMAGE.split(":")
        client.api.import_image_from_file(str(tar), repository=repository, tag=tag)
    return OS_IMAGE


def _build(client, context: Path, tag: str, buildargs: dict, log: Callable[[str], None]) -> None:
    log(f"building {tag}")
    try:
        stream = client.api.build(
            path=str(context), tag=tag, buildargs=buildargs, network_mode="host",
            rm=True, forcerm=True, decode=True,
        )
        tail: list[str] = []
        for chunk in stream:
            if "error" in chunk:
                raise BuildError(
                    f"building {tag} failed: {chunk['error'].strip()}\n" + "".join(tail[-20:])
                    + "\nIf a download failed, check --pip-index-url and --ca-bundle."
                )
            text = chunk.get("stream", "")
            tail.append(text)
            if text.startswith("Step "):
                log("  " + text.strip())
    except APIError as e:
        raise BuildError(f"building {tag} failed: {e.explanation or e}") from None


def _context(folder: Path, ca_bundle: str, extra: dict[str, Path] | None = None) -> tempfile.TemporaryDirectory:
    """Stage a build context: the folder's files, the CA bundle, and extra trees."""
    tmp = tempfile.TemporaryDirectory(prefix="ws-envbuild-")
    root = Path(tmp.name)
    shutil.copytree(folder, root, dirs_exist_ok=True)
    (root / "ca-bundle.crt").write_bytes(Path(ca_bundle).read_bytes() if ca_bundle else b"")
    for name, src in (extra or {}).items():
        shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return tmp


def _ws_package() -> tempfile.TemporaryDirectory:
    tmp = tempfile.TemporaryDirectory(prefix="ws-package-")
    root = Path(tmp.name)
    shutil.copy(REPO_ROOT / "pyproject.toml", root)
    shutil.copy(REPO_ROOT / "README.md", root)
    for package in ("workspace_hub", "workspace_library"):
        shutil.copytree(REPO_ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp


PROBE = """
import importlib, json, platform, sys
mod = importlib.import_module(sys.argv[1])
print(json.dumps({"python": platform.python_version(),
                  "framework": getattr(mod, "__version__", platform.python_version())}))
"""


def probe_versions(client, image: str, module: str) -> dict:
    """Import the env's framework inside *image* and report the real versions."""
    out = client.containers.run(image, ["python", "-c", PROBE, module], remove=True, network_mode="none")
    return json.loads(out.decode().strip().splitlines()[-1])


@contextmanager
def served_wheels(directory: str):
    """Serve a wheel directory on loopback, for ``pip --find-links`` in builds.

    Builds run on the host network, so the wheels reach pip without entering any
    image layer (a COPY would keep a copy of every wheel in the image).
    """
    if not directory:
        yield ""
        return
    if not Path(directory).is_dir():
        raise BuildError(f"--wheels {directory}: no such directory")
    directory = str(Path(directory).resolve())
    handler = partial(_QuietHandler, directory=directory)
    # A stable port keeps the WHEELS_URL build arg, and so the layer cache, the same between builds.
    stable = 20000 + int(hashlib.sha256(directory.encode()).hexdigest(), 16) % 10000
    try:
        server = ThreadingHTTPServer(("127.0.0.1", stable), handler)
    except OSError:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    with server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class EnvBuilder:
    """Builds env images layer by layer; each layer is built once per run."""

    def __init__(self, catalog: dict[str, WorkspaceEnv], options: BuildOptions, log: Callable[[str], None] = print,
                 catalog_dir: Path = DEFAULT_CATALOG_DIR):
        self.catalog, self.options, self.log, self.catalog_dir = catalog, options, log, catalog_dir
        self.client = engine()
        self.built: set[str] = set()
        self.pip_args = {"PIP_INDEX_URL": options.pip_index_url} if options.pip_index_url else {}

    def _once(self, tag: str, folder: Path, buildargs: dict, extra: dict | None = None) -> str:
        if tag not in self.built:
            with _context(folder, self.options.ca_bundle, extra) as ctx:
                _build(self.client, Path(ctx), tag, buildargs, self.log)
            self.built.add(tag)
        return tag

    def base_layer(self, os_image: str | None) -> str:
        """The shared Jupyter layer on *os_image* (default: bootstrapped Debian or --base-image)."""
        os_image = os_image or self.options.base_image or bootstrap_os_image(self.client, self.log)
        tag = "workspace-hub/layer-base:latest" if os_image == (self.options.base_image or OS_IMAGE) \
            else f"workspace-hub/layer-base-{_slug(os_image)}:latest"
        args = {"BASE_IMAGE": os_image, "JUPYTERHUB_VERSION": JUPYTERHUB_VERSION, **self.pip_args}
        return self._once(tag, self.catalog_dir / "base", args)

    def framework_layer(self, env: WorkspaceEnv, wheels_url: str) -> str:
        parent = (self.framework_layer(self.catalog[env.parent], wheels_url) if env.parent
                  else self.base_layer(env.base_image))
        args = {"PARENT": parent, **env.build_args, **self.pip_args}
        if wheels_url:
            args["WHEELS_URL"] = wheels_url
        return self._once(f"workspace-hub/layer-{env.id}:latest", env.folder, args)

    def build(self, env: WorkspaceEnv) -> dict:
        """Build *env*'s image and return the version labels written on it."""
        with served_wheels(self.options.wheels) as wheels_url:
            layer = self.framework_layer(env, wheels_url)
        unlabelled = f"workspace-hub/layer-{env.id}-ws:latest"
        with _ws_package() as pkg:
            self._once(unlabelled, self.catalog_dir / "workspace",
                       {"ENV_IMAGE": layer, "ENV_ID": env.id, "ENV_DISPLAY_NAME": env.display_name},
                       {"ws-package": Path(pkg), "templates": REPO_ROOT / "templates"})
        layer_id = self.client.images.get(unlabelled).id
        current = image_labels(self.client, env.image) or {}
        if current.get("layer-id") == layer_id:
            self.log(f"{env.image} is up to date")
            labels = {f"{LABEL_PREFIX}{k}": v for k, v in current.items()}
        else:
            labels = self._label(env, unlabelled, layer_id)
        data_root = Path(self.options.data_root or os.environ.get("WSHUB_DATA_ROOT", "data"))
        export_image(self.client, env.image, data_root / EXPORT_DIR / env.id, self.log)
        return labels

    def _label(self, env: WorkspaceEnv, unlabelled: str, layer_id: str) -> dict:
        """Import the framework in the image, and write what it reports as labels."""
        versions = probe_versions(self.client, unlabelled, env.framework_module)
        labels = {
            f"{LABEL_PREFIX}env": env.id,
            f"{LABEL_PREFIX}framework": env.framework,
            f"{LABEL_PREFIX}framework-version": versions["framework"],
            f"{LABEL_PREFIX}python-version": versions["python"],
            f"{LABEL_PREFIX}device": env.device,
            f"{LABEL_PREFIX}jupyterhub-version": JUPYTERHUB_VERSION,
            f"{LABEL_PREFIX}layer-id": layer_id,
        }
        with tempfile.TemporaryDirectory(prefix="ws-labels-") as ctx:
            lines = " ".join(f"{k}={json.dumps(v)}" for k, v in labels.items())
            (Path(ctx) / "Dockerfile").write_text(f"FROM {unlabelled}\nLABEL {lines}\n")
            _build(self.client, Path(ctx), env.image, {}, self.log)
        self.log(f"built {env.image}: {env.framework} {versions['framework']}, Python {versions['python']}")
        return labels


class _ChunkReader:
    """A file-like view of docker-py's chunk generator, for tarfile's stream mode."""

    def __init__(self, chunks):
        self.chunks, self.buffer = iter(chunks), b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buffer) < n:
            chunk = next(self.chunks, b"")
            if not chunk:
                break
            self.buffer += chunk
        data, self.buffer = (self.buffer, b"") if n < 0 else (self.buffer[:n], self.buffer[n:])
        return data


def export_image(client, image: str, folder: Path, log: Callable[[str], None] = print) -> Path:
    """Save *image* once as a `docker save` folder, ``<folder>/<image id>/``, and point ``current`` at it.

    Workspaces get ``current`` mounted read-only, and ``ws build`` reads the base
    layers from it without Docker.  Older ids stay until an admin removes them,
    since running workspaces may still have them mounted.  Layers that another
    export already holds become hard links (see :func:`share_layers`).
    """
    image_id = client.images.get(image).id.split(":", 1)[1]
    target = folder / image_id
    if not (target / "manifest.json").is_file():
        log(f"exporting {image} to {target} for in-workspace builds")
        partial = folder / f".{image_id}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        with tarfile.open(fileobj=_ChunkReader(client.api.get_image(image)), mode="r|") as tar:
            tar.extractall(partial, **safe)
        share_layers(partial, folder.parent / ".layers")
        os.replace(partial, target)
    link = folder / ".current.new"
    link.unlink(missing_ok=True)
    link.symlink_to(image_id)
    os.replace(link, folder / "current")
    return target


def share_layers(export: Path, store: Path) -> None:
    """Hard-link the export's layers to ``<store>/<diff_id>.tar``, one copy per layer for all envs.

    The envs share their lower layers (the OS, the base, tensorflow under keras),
    and ``docker save`` writes each layer uncompressed, so its file's digest is
    the layer's diff_id from the config: no hashing is needed to find twins.
    """
    [manifest] = json.loads((export / "manifest.json").read_text())
    config = json.loads((export / manifest["Config"]).read_text())
    store.mkdir(parents=True, exist_ok=True)
    for layer, diff_id in zip(manifest["Layers"], config["rootfs"]["diff_ids"], strict=True):
        path = export / layer
        if path.is_symlink() or not path.is_file():
            continue
        shared = store / f"{diff_id.split(':', 1)[1]}.tar"
        if shared.exists():
            link = path.with_name(".layer.link")
            os.link(shared, link)
            os.replace(link, path)
        else:
            os.link(path, shared)


def image_labels(client, image: str) -> dict | None:
    """The version labels of a built env image, or None when it is not built."""
    try:
        labels = client.images.get(image).labels or {}
    except ImageNotFound:
        return None
    return {k[len(LABEL_PREFIX):]: v for k, v in labels.items() if k.startswith(LABEL_PREFIX)}


def build_envs(env_ids: list[str], options: BuildOptions, if_missing: bool, start_engine: bool = True,
               log: Callable[[str], None] = print) -> None:
    """Build the named envs (every CPU env when none), starting dockerd if none answers."""
    catalog = load_catalog()
    unknown = [e for e in env_ids if e not in catalog]
    if unknown:
        raise BuildError(f"unknown env {', '.join(unknown)}: choose from {', '.join(catalog)}")
    client = engine(start=start_engine, log=log)
    builder = EnvBuilder(catalog, options, log=log)
    for env_id in env_ids or [e.id for e in catalog.values() if not e.gpu]:
        # the image workspaces start is the one the export pins: a tag alone (another checkout rebuilt it,
        # or the pinned image was pruned) still needs a build, or spawns would find no image
        pinned = pinned_image(Path(options.data_root or os.environ.get("WSHUB_DATA_ROOT", "data")).resolve(),
                              catalog[env_id])
        if if_missing and image_exists(client, catalog[env_id].image) and image_exists(client, pinned):
            log(f"{env_id}: {catalog[env_id].image} exists")
            continue
        started = time.monotonic()
        builder.build(catalog[env_id])
        log(f"{env_id}: done in {time.monotonic() - started:.1f} s")
