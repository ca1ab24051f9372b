"""What the library commands share: the client, and one way to list, show, download and wait.

``ws algorithms`` and ``ws datasets`` are the same four commands (``list``, ``show``, ``online``,
``offline``) over two kinds of library item; :func:`add_catalog_commands` and :func:`catalog_command`
are those commands, once.
"""

from __future__ import annotations

import json

REF_HELP = "an id, a name (newest version) or name:version"


def library():
    """The library's client, configured from the environment (a workspace sets it)."""
    from ..libraryclient import LibraryClient

    return LibraryClient()


def print_json(item) -> None:
    print(json.dumps(item, indent=2, ensure_ascii=False))


def print_items(client, kind: str, show, query: dict | None = None) -> int:
    """The first 100 items of *kind* (``algorithms``, ``runs``, ...) matching *query*, each printed by *show*."""
    for item in client.request("GET", kind, query={"per_page": 100, **(query or {})})["items"]:
        show(item)
    return 0


def download(client, path: str, dest: str) -> int:
    """Save what the API serves at *path* into the file *dest*."""
    written = client.download(path, dest)
    print(f"{dest}: {written} bytes")
    return 0


def wait_until_ready(client, item: dict, kind: str, show) -> int:
    """Wait for the library's validation of a new item, printing its progress; exit 1 unless it is ready."""
    item = client.wait(item["id"], on_progress=lambda text: print(f"  {text}"), kind=kind)
    show(item)
    if item["status"] != "ready":
        return 1
    print(f"ready. Bring it online with: ws {kind} online {item['id']}")
    return 0


def add_catalog_commands(commands, kind: str, show_help: str, func) -> None:
    """Add ``list`` (``--mine``, ``--search``), ``show``, ``online`` and ``offline`` for items of *kind*."""
    listing = commands.add_parser("list", help=f"{kind} you can see")
    listing.add_argument("--mine", action="store_true")
    listing.add_argument("--search")
    listing.set_defaults(func=func)
    for action, text in (("show", show_help), ("online", "make a ready version usable"),
                         ("offline", "stop offering a version")):
        one = commands.add_parser(action, help=text)
        one.add_argument("ref", help=REF_HELP)
        one.add_argument("--json", action="store_true")
        one.set_defaults(func=func)


def catalog_command(client, command: str, args, kind: str, show) -> int:
    """Run one of the commands :func:`add_catalog_commands` added."""
    if command == "list":
        query = {**({"q": args.search} if args.search else {}),
                 **({"owner": client.request("GET", "me")["name"]} if args.mine else {})}
        return print_items(client, kind, show, query)
    item = client.find(args.ref, kind=kind)
    if command in ("online", "offline"):
        item = client.request("POST", f"{kind}/{item['id']}/{command}")
    if args.json:
        print_json(item)
    else:
        show(item)
    return 0
