"""What to run, as plain data: a batch spec (run to an end) and a replica spec (serve until removed).

Specs name no engine: memory is bytes, CPUs a number, GPUs a count, mounts host folders with a target
and a read-only flag.  Each backend renders them with a pure function (``docker.container_args``,
``kubernetes.job`` and ``kubernetes.deployment``), tested by golden files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..contract import DEFAULT_PORT

GiB = 1024**3
LABEL_RUN = "ai.workspace-hub.run"  # every container the executor starts carries it, with its purpose
LABEL_OWNER = "ai.workspace-hub.owner"  # which process started it (the library, or `ws` on the host)
LABEL_KEY = "ai.workspace-hub.key"  # the record a long-lived container belongs to (a run's or a service's key)
LABEL_REVISION = "ai.workspace-hub.revision"  # which revision of a service a replica serves (a redo makes a new one)
KEPT = ("run", "service")  # purposes whose containers outlive a restart of their owner: found again by label


@dataclass(frozen=True)
class Mount:
    """A host folder (under the data root, on Kubernetes) at *target* in the container."""

    host: Path
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class BatchSpec:
    """An image run once to its end: a smoke run, a validation, a training run.

    *deadline* is the most seconds it may run (its end is then ``max-runtime``); *model* is the mount whose
    folder must hold a file when the run exits 0 (else ``no-model``), if the run must write a model.
    """

    image: str
    purpose: str
    command: tuple[str, ...] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    memory: int = 2 * GiB
    cpus: float = 2.0
    gpus: int = 0
    deadline: float | None = None
    key: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    model: Path | None = None


@dataclass(frozen=True)
class ReplicaSpec:
    """A predict image served until it is removed: an online test or a service's replica.

    The model folder is mounted read-only at ``/project/model``; the server listens on *port* (``PORT``)
    inside its own network.
    """

    image: str
    purpose: str
    model: Path
    environment: dict[str, str] = field(default_factory=dict)
    memory: int = 2 * GiB
    cpus: float = 2.0
    gpus: int = 0
    port: int = DEFAULT_PORT
    key: str = ""
    labels: dict[str, str] = field(default_factory=dict)
