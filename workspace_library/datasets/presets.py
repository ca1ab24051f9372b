"""Preset datasets: the samples' own data, so a new install can train at once.

Each preset is the templates' sample folder, packed as a zip and imported like
any upload (the same extraction and checks), owned by the platform and online
once imported.  Seeded once; admins edit or take them offline afterwards.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass

from sqlalchemy import select

from workspace_hub.scaffold import ScaffoldError, templates_dir

from ..models import Dataset, Status, Visibility
from .imports import Imports

VARIANTS = ("project", "{{cookiecutter.project_slug}}", "_variants")


@dataclass(frozen=True)
class Preset:
    name: str
    folder: str  # under the templates' _variants/
    purpose: tuple[str, str]
    description: str
    format: str = "dir"


PRESETS = (
    Preset("news-texts", "data-text", ("text", "classification"),
           "Short news texts in folders by topic: the text-classification sample's data."),
    Preset("digits", "data-digits", ("image", "classification"),
           "8x8 handwritten digits as PNG images in folders 0-9: the image-classification sample's data."),
    Preset("shapes", "data-shapes", ("image", "object_detection"),
           "Generated 64x64 images of one to three circles and squares each, with boxes (COCO json): the "
           "detection sample's data.",
           format="json"),
    Preset("ner-news", "data-ner", ("text", "named_entity_recognition"),
           "Short sentences with Person, Organization and Location entities (brat): the NER sample's data.",
           format="brat_ann"),
)


def seed(sessions, imports: Imports, owner: str) -> list[str]:
    """Import the presets that do not exist yet; bring imported ones online.  Returns the names started."""
    try:
        variants = templates_dir().joinpath(*VARIANTS)
    except ScaffoldError:
        return []
    started = []
    with sessions() as session:
        existing = {d.name: d for d in session.scalars(select(Dataset).where(Dataset.owner == owner))}
        for preset in PRESETS:
            dataset = existing.get(preset.name)
            if dataset is not None:
                if dataset.status == Status.ready:  # imported while the service was down
                    dataset.status, dataset.was_online = Status.online, True
                continue
            source = variants / preset.folder
            if not source.is_dir():
                continue
            dataset = Dataset(name=preset.name, version="1", owner=owner, description=preset.description,
                              purpose_first=preset.purpose[0], purpose_second=preset.purpose[1],
                              annotation="manual", format=preset.format, test_mode="ratio",
                              visibility=Visibility.preset,
                              status=Status.validating, progress="queued", errors=[], manifests={}, report={},
                              uploads={}, size=0)
            session.add(dataset)
            session.flush()
            part = imports.part(dataset, "train")
            part.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(source.rglob("*")):
                    if path.is_file():
                        archive.write(path, str(path.relative_to(source)))
            dataset.uploads = {"train": {"size": part.stat().st_size, "filename": f"{preset.name}.zip",
                                         "sha256": None}}
            started.append(dataset)
        session.commit()
    for dataset in started:
        imports.submit(dataset.id, online=True)
    return [d.name for d in started]
