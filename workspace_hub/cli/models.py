"""``ws models``: the model registry (versions, lineage, aliases, sharing)."""

from __future__ import annotations

import json

from .common import REF_HELP, download, library, print_items, print_json


def print_model(model: dict) -> None:
    aliases = f"  aliases: {', '.join(model['aliases'])}" if model["aliases"] else ""
    print(f"{model['id']}  {model['owner']}/{model['name']} {model['version']}  {model['visibility']}  "
          f"{model['files']} files, {model['size']} bytes{aliases}")
    lineage = model.get("lineage") or {}
    if lineage:
        print(f"  from run {lineage.get('run', {}).get('id')}: {lineage.get('algorithm')} on {lineage.get('dataset')}"
              + (f", transfer from model {lineage['parent']}" if lineage.get("parent") else ""))
    if model["metrics"]:
        print(f"  metrics: {json.dumps(model['metrics'], ensure_ascii=False)}")


def cmd_models(args) -> int:
    client = library()
    command = args.models_command
    if command == "list":
        return print_items(client, "models", print_model)
    model = client.find(args.ref, kind="models")
    if command == "download":
        return download(client, f"models/{model['id']}/download?format={args.format}",
                        args.output or f"{model['name']}-{model['version']}.{args.format}")
    if command == "alias":
        method = "DELETE" if args.remove else "PUT"
        model = client.request(method, f"models/{model['id']}/aliases/{args.alias}")
    elif command == "share":
        model = client.request("POST", f"models/{model['id']}/share", {"user": args.user})
    if getattr(args, "json", False):
        print_json(model)
    else:
        print_model(model)
        for event in model.get("alias_history", [])[:10] if command == "show" else []:
            print(f"  {event['at']}  {event['alias']} -> {event['version'] or '(removed)'}  by {event['by']}")
    return 0


def add_parser(sub) -> None:
    models = sub.add_parser("models", help="the model registry").add_subparsers(dest="models_command",
                                                                                 required=True)
    models.add_parser("list", help="models you can see").set_defaults(func=cmd_models)
    show = models.add_parser("show", help="one model version, its lineage and alias history")
    download = models.add_parser("download", help="a version's files as a zip or tar.gz")
    alias = models.add_parser("alias", help="point an alias (production) at a version, or remove it")
    share = models.add_parser("share", help="share a private version with one user")
    for one in (show, download, alias, share):
        one.add_argument("ref", help=REF_HELP)
        one.set_defaults(func=cmd_models)
    show.add_argument("--json", action="store_true")
    download.add_argument("--format", choices=("zip", "tar.gz"), default="zip")
    download.add_argument("-o", "--output")
    alias.add_argument("alias")
    alias.add_argument("--remove", action="store_true")
    share.add_argument("user")
