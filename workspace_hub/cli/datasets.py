"""``ws datasets``: the dataset library, and uploads of zips, rars and folders into it (resumable)."""

from __future__ import annotations

import os
from pathlib import Path

from ..contract import DATASET_FORMATS
from ..errors import WorkspaceHubError
from .common import REF_HELP, add_catalog_commands, catalog_command, download, library, wait_until_ready


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
    client = library()
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
    return wait_until_ready(client, item, "datasets", print_dataset)


def cmd_datasets(args) -> int:
    client = library()
    if args.datasets_command == "download":
        item = client.find(args.ref, kind="datasets")
        return download(client, f"datasets/{item['id']}/download?split={args.split}",
                        args.output or f"{item['name']}-{item['version']}-{args.split}.zip")
    return catalog_command(client, args.datasets_command, args, "datasets", print_dataset)


def add_parser(sub) -> None:
    datasets = sub.add_parser("datasets", help="the dataset library").add_subparsers(
        dest="datasets_command", required=True)
    add_catalog_commands(datasets, "datasets", "details of one dataset version", cmd_datasets)
    download = datasets.add_parser("download", help="save a split as a zip")
    download.add_argument("ref", help=REF_HELP)
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
