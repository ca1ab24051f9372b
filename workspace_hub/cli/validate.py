"""``ws validate``: check an image tar against the handbook's contract, and optionally smoke-run it."""

from __future__ import annotations

import json
import sys


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
    from ..validate import check_tar

    try:
        report = check_tar(args.path, max_uncompressed=args.max_uncompressed_size)
    except OSError as e:
        print(f"ws validate: cannot read {args.path}: {e.strerror or e}", file=sys.stderr)
        return 2
    if report.valid and args.smoke:
        from ..smoke import smoke_test

        report.errors.extend(smoke_test(args.path, report, dataset=args.dataset, model=args.model))
        report.valid = not report.errors
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print_report(report)
    return 0 if report.valid else 1


def add_parser(sub) -> None:
    validate = sub.add_parser("validate", help="check an image tar against the handbook's contract")
    validate.add_argument("path")
    validate.add_argument("--json", action="store_true", help="print one JSON object")
    validate.add_argument("--max-uncompressed-size", type=int, metavar="BYTES", default=20 * 1024**3,
                          help="stop with an error past this many uncompressed bytes (default 20 GiB)")
    validate.add_argument("--smoke", action="store_true", help="also run the image in a sandbox (needs Docker)")
    validate.add_argument("--dataset", help="dataset folder for the train smoke run")
    validate.add_argument("--model", help="model folder for the predict smoke run (default: an empty one)")
    validate.set_defaults(func=cmd_validate)
