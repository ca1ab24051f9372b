"""``ws new``, ``ws build``, ``ws list samples`` and ``ws import git``: algorithm folders under /project/code.

A folder is created from a sample or the train/api template (or cloned with git), then packed
into an image tar in ``docker_image/``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import WorkspaceHubError


def cmd_new(args) -> int:
    from ..scaffold import new_algorithm_folder, new_sample

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
    from ..imagebuild import build_image
    from ..notebook import prepare, trial_run

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
    from ..scaffold import SAMPLES

    for name, sample in SAMPLES.items():
        print(f"{name:<24}{sample.env:<12}{sample.description}")
    return 0


def cmd_import_git(args) -> int:
    from ..scaffold import import_git

    print(f"imported into {import_git(args.url, branch=args.branch, name=args.name)}")
    return 0


def add_parser(sub) -> None:
    new = sub.add_parser("new", help="create an algorithm folder from a sample or the train/api template")
    new.add_argument("what", choices=["sample", "train", "api"])
    new.add_argument("sample", nargs="?", help="the sample, with `ws new sample` (ws list samples)")
    new.add_argument("--name", help="name prefix for a sample's algorithm folders")
    new.add_argument("--prefix", help="algorithm folder name prefix, e.g. flower-classify")
    new.add_argument("--interface", help="inference interface name, e.g. classification_param")
    new.add_argument("--framework", choices=["sklearn", "pytorch", "keras"])
    new.add_argument("--output-dir", help="where to create it (default /project/code, else the current folder)")
    new.set_defaults(func=cmd_new)

    build = sub.add_parser("build", help="pack an algorithm folder into docker_image/<kind>-<name>-<device>.tar "
                                         "(no Docker)")
    build.add_argument("path", nargs="?", default=".")
    build.add_argument("--kind", choices=["train", "predict"])
    build.add_argument("--device", choices=["cpu", "gpu"])
    build.add_argument("--name", help="the <name> in the tar's file name (default: algorithm.yaml's name)")
    build.add_argument("--output-dir", help="default: the workspace's /project/docker_image")
    build.add_argument("--notebook", metavar="NOTEBOOK", help="build from a parameterized notebook (papermill "
                       "runs it for train; its function serves for --kind predict)")
    build.add_argument("--no-trial-run", action="store_true", help="with --notebook: skip the trial run")
    build.set_defaults(func=cmd_build)

    listing = sub.add_parser("list", help="list things you can use").add_subparsers(dest="list_command", required=True)
    listing.add_parser("samples", help="the code samples for `ws new sample`").set_defaults(func=cmd_list_samples)

    importing = sub.add_parser("import", help="bring code into /project/code").add_subparsers(
        dest="import_command", required=True)
    git = importing.add_parser("git", help="clone a repository (depth 1) into /project/code/<name>")
    git.add_argument("url")
    git.add_argument("--branch")
    git.add_argument("--name", help="folder name under /project/code (default: the repository's)")
    git.set_defaults(func=cmd_import_git)
