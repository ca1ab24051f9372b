"""``ws services``: online inference services (create, start, stop, scale, test, logs)."""

from __future__ import annotations

import json
import sys

from .common import library, print_items, print_json


def print_service(service: dict) -> None:
    print(f"{service['id']}  {service['owner']}/{service['name']}  [{service['status']}]  {service['replicas']} "
          f"replicas  {service['visibility']}  {service['address']}")
    if service.get("message"):
        print(f"  {service['message']}")
    if service.get("metrics"):
        print(f"  metrics: {json.dumps(service['metrics'])}")


def cmd_services(args) -> int:
    client = library()
    command = args.services_command
    if command == "list":
        return print_items(client, "services", print_service)
    if command == "create":
        source = {"model": client.find(args.model, kind="models")["id"]} if args.model else \
            {"algorithm": client.find(args.algorithm)["id"]}
        service = client.request("POST", "services", {"name": args.name, "replicas": args.replicas,
                                                      **({"visibility": "public"} if args.public else {}), **source})
        print_service(service)
        return 0
    if command == "logs":
        sys.stdout.write(client.request_text(f"services/{args.id}/logs"))
        return 0
    if command == "test":
        params = json.loads(args.params) if args.params else None
        result = client.request("POST", f"services/{args.id}/test", {} if params is None else {"params": params})
        print(f"HTTP {result['status']} in {result['latency_ms']} ms")
        print_json(result["response"])
        return 0 if result["status"] == 200 else 1
    body = {"replicas": args.replicas} if command in ("start", "scale") and args.replicas is not None else {}
    print_service(client.request("POST", f"services/{args.id}/{command}", body))
    return 0


def add_parser(sub) -> None:
    services = sub.add_parser("services", help="online inference services").add_subparsers(
        dest="services_command", required=True)
    services.add_parser("list", help="services you can see").set_defaults(func=cmd_services)
    create = services.add_parser("create", help="serve a model (or an algorithm's predict image)")
    create.add_argument("--name", required=True)
    source = create.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a model id, name (newest version) or name:version")
    source.add_argument("--algorithm", help="an algorithm with a predict image")
    create.add_argument("--replicas", type=int, default=1)
    create.add_argument("--public", action="store_true", help="every user may call it")
    create.set_defaults(func=cmd_services)
    for action, text in (("start", "start with --replicas (default: as before, at least 1)"),
                         ("stop", "stop: 0 replicas; the address stays"), ("scale", "change the replicas"),
                         ("test", "call the interface (its test values, or --params JSON)"),
                         ("logs", "the replicas' logs")):
        one = services.add_parser(action, help=text)
        one.add_argument("id", type=int)
        if action in ("start", "scale"):
            one.add_argument("--replicas", type=int, required=action == "scale")
        if action == "test":
            one.add_argument("--params", help='JSON, such as \'{"text": "hello"}\'')
        one.set_defaults(func=cmd_services)
