"""Extract and check a dataset's archives in a child process: ``python -m workspace_library.datasets.importer``.

The archives are hostile input and libarchive is C, so the work runs in its
own process, never in the service: a crash or a hang there fails one import,
not the library.  The child gets resource limits (address space, file size,
CPU time) and dies with its parent (``PR_SET_PDEATHSIG``), so a ``kill -9`` of
the service leaves no orphan writing files; the service resumes the import on
its next start.  It prints one JSON document: per split, the members (name,
staged file, size, digest) or the refusal, and the format's report.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import resource
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from .archive import ArchiveLimits, extract
from .formats import Report, validate

MODEL = "model"  # the "format" of a model upload: extraction only
CPU_SECONDS = 3600
ADDRESS_SPACE = 4 << 30


def _limit_child(max_file: int) -> None:  # runs in the child between fork and exec
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_file, max_file))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def run(archives: dict[str, Path], staging: Path, fmt: str, limits: ArchiveLimits) -> dict:
    """Import *archives* ({split: path}) into ``staging/<split>/``; return the child's report.

    A child that dies (a crash in libarchive, a limit) is reported as ``import-crashed``."""
    command = [sys.executable, "-m", __name__, "--staging", str(staging), "--format", fmt,
               "--limits", json.dumps(asdict(limits)), *(f"{split}={path}" for split, path in archives.items())]
    child = subprocess.run(command, capture_output=True, preexec_fn=lambda: _limit_child(limits.max_bytes + 1),
                           check=False)
    if child.returncode != 0:
        reason = child.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {child.returncode}"]
        return {"crashed": f"the import stopped ({reason[0][:300]}); the archive may be damaged: create it "
                           "again, and tell an admin if it keeps happening"}
    return json.loads(child.stdout)


def peak_rss_kib() -> int:
    """This program's peak resident memory (VmHWM starts at exec; ru_maxrss would count the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--staging", type=Path, required=True)
    parser.add_argument("--format", required=True)
    parser.add_argument("--limits", type=json.loads, default={})
    parser.add_argument("archives", nargs="+", help="split=path")
    args = parser.parse_args(argv)
    limits = ArchiveLimits(**args.limits)
    out = {"splits": {}}
    for spec in args.archives:
        split, _, path = spec.partition("=")
        staging = args.staging / split
        staging.mkdir(parents=True)
        model = args.format == MODEL  # a model folder: a tar.gz is accepted too, and there is no format to check
        result = extract(Path(path), staging, limits, tar_gz=model)
        entry = {"ok": result.ok, "code": result.code, "message": result.message, "entry": result.entry,
                 "dropped": result.dropped, "archive_bytes": result.archive_bytes}
        if result.ok:
            report = Report() if model else validate(args.format, result.members,
                                                      lambda m, staging=staging: (staging / m.staged).read_bytes())
            entry["members"] = [[m.name, m.staged, m.size, m.sha256] for m in result.members]
            entry["report"] = report.as_dict()
        out["splits"][split] = entry
    out["peak_rss_kib"] = peak_rss_kib()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
