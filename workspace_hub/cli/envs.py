"""``ws envs``: the base environments' catalog and images, and the build options ``ws up`` shares."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..catalog import load_catalog
from ..errors import WorkspaceHubError

HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def add_build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pip-index-url", help="pip index (mirror) used inside builds")
    p.add_argument("--ca-bundle", help=f"PEM CA bundle trusted inside builds and workspaces (default {HOST_CA_BUNDLE})")
    p.add_argument("--base-image", help="start from this image instead of bootstrapping Debian with mmdebstrap")
    p.add_argument("--wheels", help="local wheel directory served to pip in builds (e.g. /opt/wheels for torch)")


def build_options(args):
    from ..envbuild import BuildOptions

    ca = args.ca_bundle if args.ca_bundle is not None else (HOST_CA_BUNDLE if Path(HOST_CA_BUNDLE).is_file() else "")
    if ca and not Path(ca).is_file():
        raise WorkspaceHubError(f"--ca-bundle {ca}: no such file; pass a PEM bundle, or '' for none.")
    return BuildOptions(pip_index_url=args.pip_index_url or "", ca_bundle=ca, base_image=args.base_image or "",
                        wheels=args.wheels or "", data_root=getattr(args, "data_root", None) or "")


def cmd_envs_list(args) -> int:
    from ..envbuild import image_labels
    from ..executor import EngineUnavailable
    from ..executor.docker import engine

    catalog = load_catalog()
    try:
        client = engine()
    except EngineUnavailable:
        client = None
    print(f"{'ENV':<16}{'DEVICE':<8}{'FRAMEWORK':<24}{'IMAGE':<32}BUILT")
    for env in catalog.values():
        labels = image_labels(client, env.image) if client else None
        version = f"{env.framework} {labels.get('framework-version', '?')}" if labels else env.framework
        built = "yes" if labels is not None else ("no" if client else "unknown (no engine)")
        print(f"{env.id:<16}{env.device:<8}{version:<24}{env.image:<32}{built}")
    return 0


def cmd_envs_build(args) -> int:
    from ..envbuild import build_envs

    build_envs(args.envs, build_options(args), if_missing=args.if_missing, log=lambda m: print(m, flush=True))
    return 0


def add_parser(sub) -> None:
    envs = sub.add_parser("envs", help="base environments").add_subparsers(dest="envs_command", required=True)
    envs.add_parser("list", help="print the catalog and which images exist").set_defaults(func=cmd_envs_list)
    build = envs.add_parser("build", help="build env images (all CPU envs when none named)")
    build.add_argument("envs", nargs="*")
    build.add_argument("--if-missing", action="store_true", help="skip envs whose image exists")
    build.add_argument("--data-root", help="where to export images for `ws build` (default $WSHUB_DATA_ROOT or ./data)")
    add_build_options(build)
    build.set_defaults(func=cmd_envs_build)
