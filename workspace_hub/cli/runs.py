"""``ws runs``: training runs of an online algorithm on an online dataset, and their logs."""

from __future__ import annotations

import json
import sys

from ..errors import WorkspaceHubError
from .common import REF_HELP, library, print_items, print_json


def print_run(run: dict) -> None:
    reason = f" ({run['reason']})" if run["reason"] else ""
    print(f"{run['id']}  {run['name']}  [{run['status']}{reason}]  {run['algorithm']['label']} on "
          f"{run['dataset']['label']}  {json.dumps(run['hyperparameters'], ensure_ascii=False)}")
    if run["message"]:
        print(f"  {run['message']}")
    if run["metrics"]:
        print(f"  metrics: {json.dumps(run['metrics'], ensure_ascii=False)}")


def _value(text: str):
    """A --set value: JSON when it parses (5, 0.1, true), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _follow(client, run_id: int) -> int:
    """Print the run's log until it ends (resuming if cut); exit 0 when it succeeded."""
    status = client.follow_log(run_id, print)
    print(f"-- {status}", file=sys.stderr)
    return 0 if status == "succeeded" else 1


def cmd_runs(args) -> int:
    client = library()
    command = args.runs_command
    if command == "list":
        return print_items(client, "runs", print_run, {"status": args.status} if args.status else {})
    if command == "create":
        settings = {}
        for pair in args.set or []:
            name, sep, value = pair.partition("=")
            if not sep:
                raise WorkspaceHubError(f"--set {pair!r}: write NAME=VALUE, such as EPOCHS=5")
            settings[name] = _value(value)
        resources = {k: v for k, v in (("mem_gb", args.mem), ("cpus", args.cpus)) if v is not None}
        body = {"name": args.name, "algorithm": client.find(args.algorithm)["id"],
                "dataset": client.find(args.dataset, kind="datasets")["id"], "hyperparameters": settings,
                "resources": resources, "start": args.start,
                **({"train_ratio": args.ratio} if args.ratio is not None else {}),
                **({"max_runtime": args.max_runtime} if args.max_runtime else {})}
        run = client.request("POST", "runs", body)
    elif command in ("start", "stop"):
        run = client.request("POST", f"runs/{args.id}/{command}")
    elif command == "logs":
        if not args.follow:
            sys.stdout.write(client.request_text(f"runs/{args.id}/log"))
            return 0
        return _follow(client, args.id)
    else:
        run = client.request("GET", f"runs/{args.id}")
    if getattr(args, "json", False):
        print_json(run)
    else:
        print_run(run)
    if getattr(args, "follow", False) and command in ("create", "start"):
        return _follow(client, run["id"])
    return 0


def add_parser(sub) -> None:
    runs = sub.add_parser("runs", help="training runs").add_subparsers(dest="runs_command", required=True)
    runs_list = runs.add_parser("list", help="your runs")
    runs_list.add_argument("--status")
    runs_list.set_defaults(func=cmd_runs)
    create = runs.add_parser("create", help="a run of an online algorithm on an online dataset")
    create.add_argument("--name", required=True)
    create.add_argument("--algorithm", required=True, help=REF_HELP)
    create.add_argument("--dataset", required=True, help=REF_HELP)
    create.add_argument("--set", action="append", metavar="NAME=VALUE", help="a hyperparameter (repeat)")
    create.add_argument("--ratio", type=float, help="TRAIN_RATIO for a dataset without a test set (default 0.8)")
    create.add_argument("--mem", type=float, help="memory in GB")
    create.add_argument("--cpus", type=float)
    create.add_argument("--max-runtime", type=int, help="seconds before the run is stopped")
    create.add_argument("--start", action="store_true", help="queue it now (default: a draft)")
    create.add_argument("-f", "--follow", action="store_true", help="with --start: print the log until it ends")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_runs)
    for action, text in (("show", "one run"), ("start", "queue a draft"), ("stop", "stop a run")):
        one = runs.add_parser(action, help=text)
        one.add_argument("id", type=int)
        one.add_argument("--json", action="store_true")
        if action == "start":
            one.add_argument("-f", "--follow", action="store_true", help="print the log until it ends")
        one.set_defaults(func=cmd_runs)
    logs = runs.add_parser("logs", help="a run's log")
    logs.add_argument("id", type=int)
    logs.add_argument("-f", "--follow", action="store_true", help="live, until the run ends (resumes if cut)")
    logs.set_defaults(func=cmd_runs)
