"""Tables of the library: algorithms, base environments, the image tars behind them, and datasets.

An algorithm version is one row (``owner``, ``name``, ``version`` unique); a new
version is a new row.  Its train and predict parts are JSON documents shaped
like ``algorithm.yaml``.  Each uploaded, pulled or published tar is an
:class:`Image` row pointing at a content-addressed file in the store.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Enum, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


SYSTEM_OWNER = "workspace-hub"  # the owner of what the platform seeds: catalog envs, preset datasets and algorithms


class Visibility(str, enum.Enum):
    private = "private"  # the owner (and admins) only
    public = "public"  # every user
    preset = "preset"  # every user; only admins set or change it


class Status(str, enum.Enum):
    draft = "draft"
    uploading = "uploading"  # datasets: created, archives arriving
    validating = "validating"
    ready = "ready"
    online = "online"
    offline = "offline"
    failed = "failed"


class ImageStatus(str, enum.Enum):
    pending = "pending"
    validating = "validating"
    valid = "valid"
    invalid = "invalid"


def _enum(cls):
    return Enum(cls, native_enum=False, length=16, validate_strings=True)


class Record:
    """Columns shared by every library record: identity, owner, visibility and status."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # never reused (ids are, by SQLite): names the item's engine tags and model folder
    key: Mapped[str] = mapped_column(String(32), default=lambda: uuid.uuid4().hex)
    name: Mapped[str] = mapped_column(String(63), index=True)
    version: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(255), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    visibility: Mapped[Visibility] = mapped_column(_enum(Visibility), default=Visibility.private, index=True)
    status: Mapped[Status] = mapped_column(_enum(Status), default=Status.draft, index=True)
    progress: Mapped[str] = mapped_column(String(200), default="")
    errors: Mapped[list] = mapped_column(JSON, default=list)
    was_online: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now, onupdate=now)


class Item(Record):
    """Columns shared by algorithms and base environments (the records built from image tars)."""

    framework: Mapped[str] = mapped_column(String(40), default="", index=True)
    smoke: Mapped[bool] = mapped_column(Boolean, default=True)


class Algorithm(Item, Base):
    __tablename__ = "algorithms"
    KIND = "algorithm"
    __table_args__ = (UniqueConstraint("owner", "name", "version", name="uq_algorithm_version"),
                      UniqueConstraint("key", name="uq_algorithms_key"))

    purpose_first: Mapped[str] = mapped_column(String(16), default="other", index=True)
    purpose_second: Mapped[str] = mapped_column(String(40), default="other", index=True)
    transfer_training: Mapped[bool] = mapped_column(Boolean, default=False)
    device: Mapped[str] = mapped_column(String(8), default="cpu", index=True)
    train: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    predict: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    images: Mapped[list[Image]] = relationship(back_populates="algorithm", cascade="all, delete-orphan",
                                               order_by="Image.id")


class BaseEnv(Item, Base):
    __tablename__ = "base_envs"
    KIND = "base env"
    __table_args__ = (UniqueConstraint("name", name="uq_base_env_name"),
                      UniqueConstraint("key", name="uq_base_envs_key"))

    device: Mapped[str] = mapped_column(String(8), default="cpu", index=True)
    image: Mapped[str] = mapped_column(String(255), default="")  # the engine tag workspaces start from
    images: Mapped[list[Image]] = relationship(back_populates="env", cascade="all, delete-orphan",
                                               order_by="Image.id")


class Image(Base):
    """One image tar of an algorithm (role train or predict) or of a base env (role env)."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    algorithm_id: Mapped[int | None] = mapped_column(ForeignKey("algorithms.id", ondelete="CASCADE"),
                                                     nullable=True, index=True)
    env_id: Mapped[int | None] = mapped_column(ForeignKey("base_envs.id", ondelete="CASCADE"),
                                               nullable=True, index=True)
    role: Mapped[str] = mapped_column(String(8))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    tag: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[ImageStatus] = mapped_column(_enum(ImageStatus), default=ImageStatus.pending)
    report: Mapped[dict] = mapped_column(JSON, default=dict)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)

    algorithm: Mapped[Algorithm | None] = relationship(back_populates="images")
    env: Mapped[BaseEnv | None] = relationship(back_populates="images")


class Dataset(Record, Base):
    """One dataset version: its labels, the archives being uploaded, and once imported the manifest
    of each split (train, and test in the independent mode) in the content-addressed store."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("owner", "name", "version", name="uq_dataset_version"),
                      UniqueConstraint("key", name="uq_datasets_key"))
    KIND = "dataset"

    purpose_first: Mapped[str] = mapped_column(String(16), default="other", index=True)
    purpose_second: Mapped[str] = mapped_column(String(40), default="other", index=True)
    annotation: Mapped[str] = mapped_column(String(40), default="")
    format: Mapped[str] = mapped_column(String(16), index=True)
    test_mode: Mapped[str] = mapped_column(String(16), default="ratio")
    # {split: {"size": declared bytes, "filename": ..., "sha256": set when complete}}
    uploads: Mapped[dict] = mapped_column(JSON, default=dict)
    size: Mapped[int] = mapped_column(BigInteger, default=0)  # the archives' declared bytes (the quota counts)
    manifests: Mapped[dict] = mapped_column(JSON, default=dict)  # {split: manifest digest}
    report: Mapped[dict] = mapped_column(JSON, default=dict)  # {split: counts, samples, kind, files, bytes}


class RunStatus(str, enum.Enum):
    draft = "draft"
    queued = "queued"
    starting = "starting"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    stopping = "stopping"
    stopped = "stopped"

    @classmethod
    def active(cls) -> tuple[RunStatus, ...]:
        """The states that hold a slot: a container exists, or is being made or stopped."""
        return (cls.starting, cls.running, cls.stopping)

    @classmethod
    def unfinished(cls) -> tuple[RunStatus, ...]:
        """Queued or active: what a stop acts on, and what keeps its inputs from being deleted."""
        return (cls.queued, *cls.active())


class Run(Base):
    """One training run: an algorithm version's train image on a dataset version, with its settings, and
    what happened (state, reason, the image and dataset digests it used, its metrics)."""

    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("key", name="uq_runs_key"),)
    KIND = "run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(32), default=lambda: uuid.uuid4().hex)  # folder and container label
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus), default=RunStatus.draft, index=True)
    reason: Mapped[str] = mapped_column(String(16), default="")  # a workspace_hub.executor.Reason value, or ""
    message: Mapped[str] = mapped_column(Text, default="")
    algorithm_id: Mapped[int | None] = mapped_column(ForeignKey("algorithms.id", ondelete="SET NULL"),
                                                     nullable=True, index=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"),
                                                   nullable=True, index=True)
    algorithm_label: Mapped[str] = mapped_column(String(200), default="")
    dataset_label: Mapped[str] = mapped_column(String(200), default="")
    parent_model_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # transfer training's start
    parent_manifest: Mapped[str] = mapped_column(String(64), default="")  # mounted at PRETRAINED_DIR
    image: Mapped[str] = mapped_column(String(255), default="")  # the tag it started from
    image_digest: Mapped[str] = mapped_column(String(80), default="")  # what it ran (set when it starts)
    dataset_manifests: Mapped[dict] = mapped_column(JSON, default=dict)
    hyperparameters: Mapped[dict] = mapped_column(JSON, default=dict)
    resources: Mapped[dict] = mapped_column(JSON, default=dict)  # device, mem_gb, cpus
    max_runtime: Mapped[int] = mapped_column(Integer, default=3600)
    train_ratio: Mapped[float | None] = mapped_column(JSON, nullable=True)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)  # the final metrics.json
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Model(Record, Base):
    """One model version: files in the content-addressed store (a manifest), its metrics, and where it came
    from (the run, algorithm version, dataset version and settings that trained it, and its parent model when
    it was trained from one).  Versions are immutable; a new training is a new version."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("owner", "name", "version", name="uq_model_version"),
                      UniqueConstraint("key", name="uq_models_key"))
    KIND = "model"

    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), nullable=True, index=True)
    algorithm_id: Mapped[int | None] = mapped_column(ForeignKey("algorithms.id", ondelete="SET NULL"),
                                                     nullable=True, index=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"), nullable=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"), nullable=True)
    manifest: Mapped[str] = mapped_column(String(64), default="")
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    files: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    lineage: Mapped[dict] = mapped_column(JSON, default=dict)  # labels and settings, kept if the rows go
    grants: Mapped[list[ModelGrant]] = relationship(cascade="all, delete-orphan", passive_deletes=True,
                                                    order_by="ModelGrant.user")

    @property
    def shared_with(self) -> list[str]:
        return [grant.user for grant in self.grants]


class ModelGrant(Base):
    """One user who may see and use a private model: an exact name, never a pattern."""

    __tablename__ = "model_grants"
    __table_args__ = (UniqueConstraint("model_id", "user", name="uq_model_grant"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    by: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class ModelAlias(Base):
    """An alias (``production``) of one model name, pointing at one of its versions; every move is an event."""

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("owner", "name", "alias", name="uq_model_alias"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(63))
    alias: Mapped[str] = mapped_column(String(40))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    set_by: Mapped[str] = mapped_column(String(255))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class ModelAliasEvent(Base):
    """The history of an alias: which version held it, from when, set (or removed) by whom."""

    __tablename__ = "model_alias_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), index=True)
    name: Mapped[str] = mapped_column(String(63), index=True)
    alias: Mapped[str] = mapped_column(String(40))
    version: Mapped[str | None] = mapped_column(String(32), nullable=True)  # None: the alias was removed
    by: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class ServiceStatus(str, enum.Enum):
    stopped = "stopped"
    starting = "starting"
    running = "running"
    degraded = "degraded"
    failed = "failed"


class Service(Record, Base):
    """An online inference service: a predict image (an algorithm's, or a model's algorithm's) with a model,
    run as ``replicas`` containers behind the library's route ``serve/<owner>/<name>/``.  Its status is what
    ``/health`` and the containers say, never that a container was created."""

    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("owner", "name", name="uq_service_name"),
                      UniqueConstraint("key", name="uq_services_key"))
    KIND = "service"

    algorithm_id: Mapped[int | None] = mapped_column(ForeignKey("algorithms.id", ondelete="SET NULL"), nullable=True)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"), nullable=True,
                                                 index=True)
    image: Mapped[str] = mapped_column(String(255), default="")
    model_manifest: Mapped[str] = mapped_column(String(64), default="")
    interface: Mapped[dict] = mapped_column(JSON, default=dict)
    replicas: Mapped[int] = mapped_column(Integer, default=0)  # wanted; 0 is stopped
    state: Mapped[ServiceStatus] = mapped_column(_enum(ServiceStatus), default=ServiceStatus.stopped)
    message: Mapped[str] = mapped_column(Text, default="")
    revision: Mapped[int] = mapped_column(Integer, default=1)  # a redo that succeeds moves it on
