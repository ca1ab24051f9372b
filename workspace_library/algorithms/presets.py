"""Preset algorithms: the tars ``ws up`` built from the samples (:mod:`workspace_hub.presets`), seeded once.

Each is stored and validated like any upload (the checks, the smoke run, the
load by digest), owned by the platform, and goes online when it passes.  A
preset whose tars are not built is not a record: :func:`missing` lists it, with
the command that builds it, for the algorithms page (as envs say which are not
built).  Admins edit, take offline or delete presets afterwards; a deleted one
is not seeded again while its name and version are taken by another.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from workspace_hub.presets import PRESETS, preset_tars
from workspace_hub.scaffold import SAMPLES

from .. import items
from ..models import Algorithm, Image, Status, Visibility

VERSION = "1.0"


def seed(service, owner: str) -> list[str]:
    """Store and validate the built presets that have no record yet; returns the names started."""
    started = []
    with service.sessions() as session:
        existing = set(session.scalars(select(Algorithm.name).where(Algorithm.owner == owner)))
        for preset in PRESETS:
            tars = preset_tars(Path(service.data_root), preset)
            if preset.name in existing or not tars:
                continue
            images = []
            for role, path in sorted(tars.items()):
                digest, size = service.store.link_in(path)
                images.append(Image(role=role, filename=path.name, sha256=digest, size=size))
            item = Algorithm(name=preset.name, version=VERSION, owner=owner, visibility=Visibility.preset,
                             description=SAMPLES[preset.name].description, status=Status.draft, errors=[],
                             progress="", smoke=service.smoke_by_default)
            session.add(item)
            session.flush()
            items.start_validation(session, service.validations, item, images, online=True)
            started.append(preset.name)
    return started


def missing(data_root: str | Path, session, owner: str) -> list[dict]:
    """The presets that are neither built on this host nor seeded: name, env and the command that builds it."""
    seeded = set(session.scalars(select(Algorithm.name).where(Algorithm.owner == owner)))
    return [{"name": p.name, "env": p.env, "dataset": p.dataset, "description": SAMPLES[p.name].description,
             "unavailable": f"not built on this host: the {p.env} env is missing; run `{p.build_command}`"}
            for p in PRESETS if p.name not in seeded and not preset_tars(Path(data_root), p)]
