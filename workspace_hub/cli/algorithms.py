"""``ws publish`` and ``ws algorithms``: a project's image tars into the algorithm library, and the library."""

from __future__ import annotations

import os

from ..errors import WorkspaceHubError
from .common import add_catalog_commands, catalog_command, library, wait_until_ready


def print_algorithm(item: dict) -> None:
    print(f"{item['id']}  {item['owner']}/{item['name']} {item['version']}  [{item['status']}]  "
          f"{item['visibility']}  {item['purpose']['first']}/{item['purpose']['second']}  {item['device']}")
    for image in item.get("images", []):
        print(f"  {image['role']:8} {image['filename']}  {image['tag'] or '(not loaded)'}  {image['status']}")
    for error in item.get("errors") or []:
        print(f"  error [{error.get('image') or '-'}] {error['code']}: {error['message']}")


def cmd_publish(args) -> int:
    """Publish this workspace's docker_image tars; wait for the verdict (exit 1 when it failed)."""
    project = args.project or os.environ.get("WORKSPACE_PROJECT") or os.environ.get("JUPYTERHUB_SERVER_NAME")
    if not project:
        raise WorkspaceHubError("which project? Run this in a workspace, or pass --project")
    client = library()
    body = {"project": project, **({"name": args.name} if args.name else {}),
            **({"visibility": "public"} if args.public else {})}
    item = client.request("POST", "algorithms/from-project", body)
    print(f"publishing {item['owner']}/{item['name']} {item['version']} (id {item['id']}): "
          f"{', '.join(i['filename'] for i in item['images'])}")
    if args.no_wait:
        return 0
    return wait_until_ready(client, item, "algorithms", print_algorithm)


def cmd_algorithms(args) -> int:
    return catalog_command(library(), args.algorithms_command, args, "algorithms", print_algorithm)


def add_parser(sub) -> None:
    publish = sub.add_parser("publish", help="publish this project's docker_image tars to the library")
    publish.add_argument("--project", help="the workspace project (default: this workspace's)")
    publish.add_argument("--name", help="which algorithm, when docker_image holds several")
    publish.add_argument("--public", action="store_true", help="visible to every user (default: private)")
    publish.add_argument("--no-wait", action="store_true", help="return once the upload is accepted")
    publish.set_defaults(func=cmd_publish)

    algorithms = sub.add_parser("algorithms", help="the algorithm library").add_subparsers(
        dest="algorithms_command", required=True)
    add_catalog_commands(algorithms, "algorithms", "details of one algorithm", cmd_algorithms)
