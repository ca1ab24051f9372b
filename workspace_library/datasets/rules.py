"""Dataset rules, without HTTP: the input schemas, uploads and status moves.

Visibility, ownership, presets and online/offline are the library's common
rules (:mod:`workspace_library.rules`).  A dataset adds:

- Status: ``uploading`` (archives arriving) -> ``validating`` -> ``ready``
  -> ``online`` <-> ``offline``, or ``failed`` with the checks' problems; a
  failed dataset takes a new upload (offset 0) and goes back to ``uploading``.
- Splits: ``train`` always; ``test`` too in the ``independent`` test-set mode.
  In the ``ratio`` mode training runs split the train set with ``TRAIN_RATIO``.
- Format and test-set mode are fixed once the archives are validated (they are
  what the validation checked); name and version never change; a version
  that has been online keeps its content; a changed dataset is a new version.
"""

from __future__ import annotations

from workspace_hub.contract import DATASET_FORMATS

from ..models import Dataset, Status
from ..errors import LibraryError
from ..rules import PURPOSE, SLUG, TEXT, VERSION, VISIBILITY, schema

SPLITS = ("train", "test")
TEST_MODES = ("ratio", "independent")
ARCHIVE = {"type": "object", "additionalProperties": False, "required": ["size"],
           "properties": {"size": {"type": "integer", "minimum": 1},
                          "filename": {"type": "string", "maxLength": 255}}}
FIELDS = {
    "name": SLUG,
    "version": VERSION,
    "purpose": PURPOSE,
    "annotation": {"type": "string", "pattern": r"^[a-z0-9_-]{0,40}$"},
    "format": {"enum": list(DATASET_FORMATS)},
    "test_mode": {"enum": list(TEST_MODES)},
    "description": TEXT,
    "visibility": VISIBILITY,
}
SCHEMAS = {
    "dataset-create": schema({**FIELDS, "archives": {"type": "object", "additionalProperties": False,
                                                      "required": ["train"],
                                                      "properties": {s: ARCHIVE for s in SPLITS}}},
                              ["name", "version", "format", "archives"]),
    "dataset-edit": schema({k: v for k, v in FIELDS.items() if k not in ("name", "version")}, []),
}
# What may change after the archives are validated (format and mode are what was checked).
EDITABLE_WHEN_VALIDATED = {"description", "visibility", "purpose", "annotation"}


def splits(dataset: Dataset) -> tuple[str, ...]:
    return SPLITS if dataset.test_mode == "independent" else SPLITS[:1]


def check_archives(data: dict) -> dict:
    """The declared archives must match the test-set mode."""
    wanted = SPLITS if data.get("test_mode") == "independent" else SPLITS[:1]
    if set(data["archives"]) != set(wanted):
        raise LibraryError(400, "invalid-field", f"archives: the {data.get('test_mode', 'ratio')} mode takes "
                           f"{' and '.join(wanted)}", "archives")
    return {split: {"size": a["size"], "filename": a.get("filename", ""), "sha256": None}
            for split, a in data["archives"].items()}


def check_edit(dataset: Dataset, data: dict) -> None:
    if dataset.status == Status.validating:
        raise LibraryError(409, "validating", "Wait until validation ends before editing.")
    fixed = sorted(set(data) - EDITABLE_WHEN_VALIDATED)
    if fixed and dataset.status in (Status.ready, Status.online, Status.offline):
        raise LibraryError(409, "immutable", f"{dataset.name} {dataset.version} is validated, so "
                           f"{', '.join(fixed)} can no longer change; create a new version.", fixed[0])


def start_upload(dataset: Dataset, split: str, offset: int, length: int | None) -> None:
    """Check one upload request against the dataset's state; a failed dataset restarts at offset 0."""
    if split not in splits(dataset):
        raise LibraryError(404, "not-found", f"{dataset.name} takes archives for {', '.join(splits(dataset))} only "
                           f"(test-set mode {dataset.test_mode}).")
    if dataset.status == Status.failed and offset == 0:
        dataset.status, dataset.errors, dataset.report, dataset.manifests = Status.uploading, [], {}, {}
    if dataset.status != Status.uploading:
        raise LibraryError(409, "status", f"{dataset.name} is {dataset.status.value}; archives are uploaded to a "
                           "new dataset (or a failed one, starting at offset 0). Create a new version for new "
                           "content.")
    upload = dataset.uploads[split]
    if length is not None and offset == 0 and length != upload["size"]:
        dataset.uploads = {**dataset.uploads, split: {**upload, "size": length}}
        dataset.size = sum(u["size"] for u in dataset.uploads.values())
