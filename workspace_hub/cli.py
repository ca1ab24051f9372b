"""``ws``: the one command of Workspace Hub, on the host and in every workspace.

argparse (stdlib) keeps the workspace images free of CLI dependencies.  Each
subcommand parses, calls a library function and prints; :func:`main` maps
every :class:`~workspace_hub.errors.WorkspaceHubError` to its message and exit
code 1 (usage errors exit 2, as argparse does).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from . import __version__
from .catalog import REPO_ROOT, load_catalog
from .contract import DATASET_FORMATS
from .errors import WorkspaceHubError

HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def _hub_url(port: str | None = None) -> str:
    return f"http://127.0.0.1:{port or os.environ.get('WSHUB_PORT', '8000')}"


def hub_answers(url: str) -> str | None:
    """The hub's version if its API answers at *url*, else None."""
    try:
        with urllib.request.urlopen(f"{url}/hub/api/", timeout=3) as r:
            return json.load(r).get("version")
    except (OSError, ValueError):
        return None


def build_options(args):
    from .envbuild import BuildOptions

    ca = args.ca_bundle if args.ca_bundle is not None else (HOST_CA_BUNDLE if Path(HOST_CA_BUNDLE).is_file() else "")
    if ca and not Path(ca).is_file():
        raise WorkspaceHubError(f"--ca-bundle {ca}: no such file; pass a PEM bundle, or '' for none.")
    return BuildOptions(pip_index_url=args.pip_index_url or "", ca_bundle=ca, base_image=args.base_image or "",
                        wheels=args.wheels or "", data_root=getattr(args, "data_root", None) or "")


def cmd_envs_list(args) -> int:
    from .envbuild import image_labels
    from .executor import EngineUnavailable, engine

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
    from .envbuild import build_envs

    build_envs(args.envs, build_options(args), if_missing=args.if_missing, log=lambda m: print(m, flush=True))
    return 0


def cmd_up(args) -> int:
    """Start dockerd if needed, build the default envs if missing, then run the hub."""
    env = dict(os.environ, WSHUB_PROFILE=args.profile, WSHUB_PORT=str(args.port))
    if args.data_root:
        env["WSHUB_DATA_ROOT"] = str(Path(args.data_root).resolve())
    if args.profile == "docker":
        from .envbuild import build_envs

        build_envs(args.envs, build_options(args), if_missing=True, log=lambda m: print(m, flush=True))
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
        return 0
    version = hub_answers(_hub_url(args.port))
    print(f"hub:     {'JupyterHub ' + version + ' at ' + _hub_url(args.port) if version else 'not answering on ' + _hub_url(args.port)}")
    from .executor import EngineUnavailable, engine

    try:
        engine()
        print("docker:  engine answers")
    except EngineUnavailable as e:
        print(f"docker:  {e}")
    return 0 if version else 1


def print_report(report) -> None:
    verdict = "valid" if report.valid else "INVALID"
    print(f"{verdict}: kind={report.kind} name={report.name} device={report.device}")
    image = report.image
    if image:
        print(f"  config  {image['config_digest']}")
        print(f"  layers  {len(image['layers'])}, {image['size']} bytes on disk")
        print(f"  cmd     {image['cmd']}  entrypoint {image['entrypoint']}")
        for key, value in sorted(image["labels"].items()):
            print(f"  label   {key}={value if len(value) <= 100 else value[:97] + '...'}")
    for title, problems in (("error", report.errors), ("warning", report.warnings)):
        for p in problems:
            print(f"{title} [{p.code}] {p.message}" + (f"  ({p.path})" if p.path else ""))


def cmd_validate(args) -> int:
    """Exit 0 valid, 1 invalid, 2 unreadable path (argparse uses 2 for usage errors too)."""
    from .validate import check_tar

    try:
        report = check_tar(args.path, max_uncompressed=args.max_uncompressed_size)
    except OSError as e:
        print(f"ws validate: cannot read {args.path}: {e.strerror or e}", file=sys.stderr)
        return 2
    if report.valid and args.smoke:
        from .smoke import smoke_test

        report.errors.extend(smoke_test(args.path, report, dataset=args.dataset, model=args.model))
        report.valid = not report.errors
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report)
    return 0 if report.valid else 1


def cmd_new(args) -> int:
    from .scaffold import new_algorithm_folder, new_sample

    output = Path(args.output_dir) if args.output_dir else None
    if args.what == "sample":
        if not args.sample:
            raise WorkspaceHubError("ws new sample needs a sample name; see ws list samples")
        paths = new_sample(args.sample, args.name, output)
    else:
        missing = [o for o in ("prefix", "interface", "framework") if not getattr(args, o)]
        if missing:
            raise WorkspaceHubError(f"ws new {args.what} needs --{' --'.join(missing)}")
        paths = [new_algorithm_folder(args.what, args.prefix, args.interface, args.framework, output)]
    for path in paths:
        print(f"created {path}")
    return 0


def cmd_build(args) -> int:
    from .imagebuild import build_image
    from .notebook import prepare, trial_run

    log = lambda m: print(m, flush=True)  # noqa: E731
    if args.notebook:  # the notebook's folder is the project; its description comes from the notebook
        kind = args.kind or "train"
        algorithm = prepare(args.notebook, kind, args.name, os.environ.get("WORKSPACE_ENV", "python"), log)
        if not args.no_trial_run:
            trial_run(args.notebook, kind, log)
        build_image(Path(args.notebook).resolve().parent, kind=kind, device=args.device,
                    name=algorithm["name"], output_dir=args.output_dir, log=log, algorithm=algorithm)
    else:
        build_image(args.path, kind=args.kind, device=args.device, name=args.name, output_dir=args.output_dir,
                    log=log)
    return 0


def cmd_list_samples(args) -> int:
    from .scaffold import SAMPLES

    for name, sample in SAMPLES.items():
        print(f"{name:<24}{sample.env:<12}{sample.description}")
    return 0


def cmd_import_git(args) -> int:
    from .scaffold import import_git

    print(f"imported into {import_git(args.url, branch=args.branch, name=args.name)}")
    return 0


def _library():
    from .libraryclient import LibraryClient

    return LibraryClient()


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
    client = _library()
    body = {"project": project, **({"name": args.name} if args.name else {}),
            **({"visibility": "public"} if args.public else {})}
    item = client.request("POST", "algorithms/from-project", body)
    print(f"publishing {item['owner']}/{item['name']} {item['version']} (id {item['id']}): "
          f"{', '.join(i['filename'] for i in item['images'])}")
    if args.no_wait:
        return 0
    item = client.wait(item["id"], on_progress=lambda text: print(f"  {text}"))
    print_algorithm(item)
    if item["status"] != "ready":
        return 1
    print(f"ready. Bring it online with: ws algorithms online {item['id']}")
    return 0


def cmd_algorithms(args) -> int:
    client = _library()
    if args.algorithms_command == "list":
        query = {"per_page": 100, **({"q": args.search} if args.search else {}),
                 **({"owner": client.request("GET", "me")["name"]} if args.mine else {})}
        for item in client.request("GET", "algorithms", query=query)["items"]:
            print_algorithm(item)
        return 0
    item = client.find(args.ref)
    if args.algorithms_command in ("online", "offline"):
        item = client.request("POST", f"algorithms/{item['id']}/{args.algorithms_command}")
    if args.json:
        print(json.dumps(item, indent=2, ensure_ascii=False))
    else:
        print_algorithm(item)
    return 0


def print_dataset(item: dict) -> None:
    print(f"{item['id']}  {item['owner']}/{item['name']} {item['version']}  [{item['status']}]  {item['visibility']}"
          f"  {item['format']}  {item['purpose']['first']}/{item['purpose']['second']}  test set: {item['test_mode']}")
    for split, report in (item.get("report") or {}).items():
        counts = ", ".join(f"{k}: {v}" for k, v in list(report.get("counts", {}).items())[:10])
        print(f"  {split:5} {report.get('files', 0)} files, {report.get('bytes', 0)} bytes  {counts}")
    for error in item.get("errors") or []:
        where = ":".join(str(x) for x in (error.get("file"), error.get("line")) if x)
        print(f"  error [{error.get('split') or '-'}] {error['code']} {where}: {error['message']}")


def _zip_folder(folder: Path) -> Path:
    """A folder becomes a temporary zip, so that every upload takes the one import path."""
    import tempfile
    import zipfile

    fd, name = tempfile.mkstemp(suffix=".zip")
    os.close(fd)
    with zipfile.ZipFile(name, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                archive.write(path, str(path.relative_to(folder)))
    return Path(name)


def cmd_datasets_upload(args) -> int:
    """Create a dataset version (or resume an unfinished upload of it), send its archives, wait."""
    client = _library()
    sources = {"train": Path(args.path), **({"test": Path(args.test)} if args.test else {})}
    archives, temporary = {}, []
    try:
        for split, source in sources.items():
            if source.is_dir():
                archives[split] = _zip_folder(source)
                temporary.append(archives[split])
            elif source.is_file():
                archives[split] = source
            else:
                raise WorkspaceHubError(f"{source} is neither a zip/rar archive nor a folder")
        me = client.request("GET", "me")["name"]
        found = client.request("GET", "datasets", query={"owner": me, "name": args.name, "version": args.version})
        item = found["items"][0] if found["items"] else None
        if item is None or item["status"] not in ("uploading", "failed"):
            first, _, second = (args.purpose or "other/other").partition("/")
            body = {"name": args.name, "version": args.version, "format": args.format,
                    "test_mode": "independent" if args.test else "ratio", "purpose": {"first": first,
                    "second": second or "other"}, "description": args.description or "",
                    "annotation": args.annotation, "visibility": "public" if args.public else "private",
                    "archives": {split: {"size": path.stat().st_size, "filename": sources[split].name}
                                 for split, path in archives.items()}}
            item = client.request("POST", "datasets", body)
            print(f"created dataset {item['owner']}/{item['name']} {item['version']} (id {item['id']})")
        else:
            print(f"resuming the upload of dataset {item['name']} {item['version']} (id {item['id']})")
        for split, path in archives.items():
            client.upload(item["id"], split, path, on_progress=lambda done, total, split=split: print(
                f"  {split}: {done * 100 // total}% of {total} bytes", flush=True))
    finally:
        for path in temporary:
            path.unlink(missing_ok=True)
    if args.no_wait:
        return 0
    item = client.wait(item["id"], on_progress=lambda text: print(f"  {text}"), kind="datasets")
    print_dataset(item)
    if item["status"] != "ready":
        return 1
    print(f"ready. Bring it online with: ws datasets online {item['id']}")
    return 0


def cmd_datasets(args) -> int:
    client = _library()
    if args.datasets_command == "list":
        query = {"per_page": 100, **({"q": args.search} if args.search else {}),
                 **({"owner": client.request("GET", "me")["name"]} if args.mine else {})}
        for item in client.request("GET", "datasets", query=query)["items"]:
            print_dataset(item)
        return 0
    item = client.find(args.ref, kind="datasets")
    if args.datasets_command == "download":
        dest = args.output or f"{item['name']}-{item['version']}-{args.split}.zip"
        written = client.download(f"datasets/{item['id']}/download?split={args.split}", dest)
        print(f"{dest}: {written} bytes")
        return 0
    if args.datasets_command in ("online", "offline"):
        item = client.request("POST", f"datasets/{item['id']}/{args.datasets_command}")
    if args.json:
        print(json.dumps(item, indent=2, ensure_ascii=False))
    else:
        print_dataset(item)
    return 0


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


def cmd_runs(args) -> int:
    client = _library()
    command = args.runs_command
    if command == "list":
        query = {"per_page": 100, **({"status": args.status} if args.status else {})}
        for run in client.request("GET", "runs", query=query)["items"]:
            print_run(run)
        return 0
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
        status = client.follow_log(args.id, print)
        print(f"-- {status}", file=sys.stderr)
        return 0 if status == "succeeded" else 1
    else:
        run = client.request("GET", f"runs/{args.id}")
    if getattr(args, "json", False):
        print(json.dumps(run, indent=2, ensure_ascii=False))
    else:
        print_run(run)
    if getattr(args, "follow", False) and command in ("create", "start"):
        status = client.follow_log(run["id"], print)
        print(f"-- {status}", file=sys.stderr)
        return 0 if status == "succeeded" else 1
    return 0


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
    client = _library()
    command = args.models_command
    if command == "list":
        for model in client.request("GET", "models", query={"per_page": 100})["items"]:
            print_model(model)
        return 0
    model = client.find(args.ref, kind="models")
    if command == "download":
        dest = args.output or f"{model['name']}-{model['version']}.{args.format}"
        written = client.download(f"models/{model['id']}/download?format={args.format}", dest)
        print(f"{dest}: {written} bytes")
        return 0
    if command == "alias":
        method = "DELETE" if args.remove else "PUT"
        model = client.request(method, f"models/{model['id']}/aliases/{args.alias}")
    elif command == "share":
        model = client.request("POST", f"models/{model['id']}/share", {"user": args.user})
    if getattr(args, "json", False):
        print(json.dumps(model, indent=2, ensure_ascii=False))
    else:
        print_model(model)
        for event in model.get("alias_history", [])[:10] if command == "show" else []:
            print(f"  {event['at']}  {event['alias']} -> {event['version'] or '(removed)'}  by {event['by']}")
    return 0


def print_service(service: dict) -> None:
    print(f"{service['id']}  {service['owner']}/{service['name']}  [{service['status']}]  {service['replicas']} "
          f"replicas  {service['visibility']}  {service['address']}")
    if service.get("message"):
        print(f"  {service['message']}")
    if service.get("metrics"):
        print(f"  metrics: {json.dumps(service['metrics'])}")


def cmd_services(args) -> int:
    client = _library()
    command = args.services_command
    if command == "list":
        for service in client.request("GET", "services", query={"per_page": 100})["items"]:
            print_service(service)
        return 0
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
        print(json.dumps(result["response"], indent=2, ensure_ascii=False))
        return 0 if result["status"] == 200 else 1
    body = {"replicas": args.replicas} if command in ("start", "scale") and args.replicas is not None else {}
    print_service(client.request("POST", f"services/{args.id}/{command}", body))
    return 0


def _add_build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pip-index-url", help="pip index (mirror) used inside builds")
    p.add_argument("--ca-bundle", help=f"PEM CA bundle trusted inside builds and workspaces (default {HOST_CA_BUNDLE})")
    p.add_argument("--base-image", help="start from this image instead of bootstrapping Debian with mmdebstrap")
    p.add_argument("--wheels", help="local wheel directory served to pip in builds (e.g. /opt/wheels for torch)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ws", description="Workspace Hub: AI development workspaces on JupyterHub.")
    p.add_argument("--version", action="version", version=f"ws {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start dockerd if needed, build missing env images, run the hub")
    up.add_argument("--profile", choices=["docker", "local", "kubernetes"], default=os.environ.get("WSHUB_PROFILE", "docker"))
    up.add_argument("--port", type=int, default=int(os.environ.get("WSHUB_PORT", "8000")))
    up.add_argument("--data-root", help="workspace files and hub state (default ./data)")
    up.add_argument("--envs", type=lambda text: [e for e in text.split(",") if e], default=["python"],
                    help="env images to build when missing, e.g. python,pytorch (default: python)")
    _add_build_options(up)
    up.set_defaults(func=cmd_up)

    status = sub.add_parser("status", help="show the project (in a workspace) or the hub and engine (host)")
    status.add_argument("--port", type=int, default=None)
    status.set_defaults(func=cmd_status)

    validate = sub.add_parser("validate", help="check an image tar against the handbook's contract")
    validate.add_argument("path")
    validate.add_argument("--json", action="store_true", help="print one JSON object")
    validate.add_argument("--max-uncompressed-size", type=int, metavar="BYTES", default=20 * 1024**3,
                          help="stop with an error past this many uncompressed bytes (default 20 GiB)")
    validate.add_argument("--smoke", action="store_true", help="also run the image in a sandbox (needs Docker)")
    validate.add_argument("--dataset", help="dataset folder for the train smoke run")
    validate.add_argument("--model", help="model folder for the predict smoke run (default: an empty one)")
    validate.set_defaults(func=cmd_validate)

    new = sub.add_parser("new", help="create an algorithm folder from a sample or the train/api template")
    new.add_argument("what", choices=["sample", "train", "api"])
    new.add_argument("sample", nargs="?", help="the sample, with `ws new sample` (ws list samples)")
    new.add_argument("--name", help="name prefix for a sample's algorithm folders")
    new.add_argument("--prefix", help="algorithm folder name prefix, e.g. flower-classify")
    new.add_argument("--interface", help="inference interface name, e.g. classification_param")
    new.add_argument("--framework", choices=["sklearn", "pytorch", "keras"])
    new.add_argument("--output-dir", help="where to create it (default /project/code, else the current folder)")
    new.set_defaults(func=cmd_new)

    build_cmd = sub.add_parser("build", help="pack an algorithm folder into docker_image/<kind>-<name>-<device>.tar "
                                              "(no Docker)")
    build_cmd.add_argument("path", nargs="?", default=".")
    build_cmd.add_argument("--kind", choices=["train", "predict"])
    build_cmd.add_argument("--device", choices=["cpu", "gpu"])
    build_cmd.add_argument("--name", help="the <name> in the tar's file name (default: algorithm.yaml's name)")
    build_cmd.add_argument("--output-dir", help="default: the workspace's /project/docker_image")
    build_cmd.add_argument("--notebook", metavar="NOTEBOOK", help="build from a parameterized notebook (papermill "
                           "runs it for train; its function serves for --kind predict)")
    build_cmd.add_argument("--no-trial-run", action="store_true", help="with --notebook: skip the trial run")
    build_cmd.set_defaults(func=cmd_build)

    listing = sub.add_parser("list", help="list things you can use").add_subparsers(dest="list_command", required=True)
    listing.add_parser("samples", help="the code samples for `ws new sample`").set_defaults(func=cmd_list_samples)

    importing = sub.add_parser("import", help="bring code into /project/code").add_subparsers(
        dest="import_command", required=True)
    git = importing.add_parser("git", help="clone a repository (depth 1) into /project/code/<name>")
    git.add_argument("url")
    git.add_argument("--branch")
    git.add_argument("--name", help="folder name under /project/code (default: the repository's)")
    git.set_defaults(func=cmd_import_git)

    publish = sub.add_parser("publish", help="publish this project's docker_image tars to the library")
    publish.add_argument("--project", help="the workspace project (default: this workspace's)")
    publish.add_argument("--name", help="which algorithm, when docker_image holds several")
    publish.add_argument("--public", action="store_true", help="visible to every user (default: private)")
    publish.add_argument("--no-wait", action="store_true", help="return once the upload is accepted")
    publish.set_defaults(func=cmd_publish)

    algorithms = sub.add_parser("algorithms", help="the algorithm library").add_subparsers(
        dest="algorithms_command", required=True)
    algorithms_list = algorithms.add_parser("list", help="algorithms you can see")
    algorithms_list.add_argument("--mine", action="store_true")
    algorithms_list.add_argument("--search")
    algorithms_list.set_defaults(func=cmd_algorithms)
    for action, text in (("show", "details of one algorithm"), ("online", "make a ready version usable"),
                         ("offline", "stop offering a version")):
        one = algorithms.add_parser(action, help=text)
        one.add_argument("ref", help="an id, a name (newest version) or name:version")
        one.add_argument("--json", action="store_true")
        one.set_defaults(func=cmd_algorithms)

    datasets = sub.add_parser("datasets", help="the dataset library").add_subparsers(
        dest="datasets_command", required=True)
    datasets_list = datasets.add_parser("list", help="datasets you can see")
    datasets_list.add_argument("--mine", action="store_true")
    datasets_list.add_argument("--search")
    datasets_list.set_defaults(func=cmd_datasets)
    for action, text in (("show", "details of one dataset version"), ("online", "make a ready version usable"),
                         ("offline", "stop offering a version")):
        one = datasets.add_parser(action, help=text)
        one.add_argument("ref", help="an id, a name (newest version) or name:version")
        one.add_argument("--json", action="store_true")
        one.set_defaults(func=cmd_datasets)
    download = datasets.add_parser("download", help="save a split as a zip")
    download.add_argument("ref", help="an id, a name (newest version) or name:version")
    download.add_argument("--split", choices=("train", "test"), default="train")
    download.add_argument("-o", "--output", help="the zip to write (default <name>-<version>-<split>.zip)")
    download.set_defaults(func=cmd_datasets)
    upload = datasets.add_parser("upload", help="upload a zip, rar or folder as a new dataset version "
                                                "(run it again to resume)")
    upload.add_argument("path", help="the train set: a .zip, a .rar or a folder")
    upload.add_argument("--test", help="an independent test set (zip, rar or folder); without it, runs split "
                                       "the train set by TRAIN_RATIO")
    upload.add_argument("--name", required=True)
    upload.add_argument("--version", default="1")
    upload.add_argument("--format", required=True, choices=DATASET_FORMATS, help="see the handbook, section 10")
    upload.add_argument("--purpose", help="first/second level, e.g. text/classification")
    upload.add_argument("--annotation", default="manual", help="how it was labelled (manual, auto, ...)")
    upload.add_argument("--description")
    upload.add_argument("--public", action="store_true", help="visible to every user (default: private)")
    upload.add_argument("--no-wait", action="store_true", help="return once the archives are sent")
    upload.set_defaults(func=cmd_datasets_upload)

    runs = sub.add_parser("runs", help="training runs").add_subparsers(dest="runs_command", required=True)
    runs_list = runs.add_parser("list", help="your runs")
    runs_list.add_argument("--status")
    runs_list.set_defaults(func=cmd_runs)
    create = runs.add_parser("create", help="a run of an online algorithm on an online dataset")
    create.add_argument("--name", required=True)
    create.add_argument("--algorithm", required=True, help="an id, a name (newest version) or name:version")
    create.add_argument("--dataset", required=True, help="an id, a name (newest version) or name:version")
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

    models = sub.add_parser("models", help="the model registry").add_subparsers(dest="models_command",
                                                                                 required=True)
    models.add_parser("list", help="models you can see").set_defaults(func=cmd_models)
    show = models.add_parser("show", help="one model version, its lineage and alias history")
    download = models.add_parser("download", help="a version's files as a zip or tar.gz")
    alias = models.add_parser("alias", help="point an alias (production) at a version, or remove it")
    share = models.add_parser("share", help="share a private version with one user")
    for one in (show, download, alias, share):
        one.add_argument("ref", help="an id, a name (newest version) or name:version")
        one.set_defaults(func=cmd_models)
    show.add_argument("--json", action="store_true")
    download.add_argument("--format", choices=("zip", "tar.gz"), default="zip")
    download.add_argument("-o", "--output")
    alias.add_argument("alias")
    alias.add_argument("--remove", action="store_true")
    share.add_argument("user")

    services = sub.add_parser("services", help="online inference services").add_subparsers(
        dest="services_command", required=True)
    services.add_parser("list", help="services you can see").set_defaults(func=cmd_services)
    create_service = services.add_parser("create", help="serve a model (or an algorithm's predict image)")
    create_service.add_argument("--name", required=True)
    source = create_service.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a model id, name (newest version) or name:version")
    source.add_argument("--algorithm", help="an algorithm with a predict image")
    create_service.add_argument("--replicas", type=int, default=1)
    create_service.add_argument("--public", action="store_true", help="every user may call it")
    create_service.set_defaults(func=cmd_services)
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

    envs = sub.add_parser("envs", help="base environments").add_subparsers(dest="envs_command", required=True)
    envs.add_parser("list", help="print the catalog and which images exist").set_defaults(func=cmd_envs_list)
    build = envs.add_parser("build", help="build env images (all CPU envs when none named)")
    build.add_argument("envs", nargs="*")
    build.add_argument("--if-missing", action="store_true", help="skip envs whose image exists")
    build.add_argument("--data-root", help="where to export images for `ws build` (default $WSHUB_DATA_ROOT or ./data)")
    _add_build_options(build)
    build.set_defaults(func=cmd_envs_build)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except WorkspaceHubError as e:
        print(f"ws: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
