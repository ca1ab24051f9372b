"""``algorithm.yaml``: what a project declares for publishing, checked against a JSON schema.

jsonschema does the checking; this module only words its errors so that each
one points at the bad key (``interface.params[0].type: ...``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

# jsonschema imports every optional format checker it finds at import time;
# rfc3987_syntax compiles lark grammars then (0.6 s of each `ws build` here).
# No format is checked below, so keep it from loading unless something already did.
sys.modules.setdefault("rfc3987_syntax", None)
from jsonschema import Draft202012Validator  # noqa: E402

from .contract import DATASET_FORMATS, IMAGE_NAME  # noqa: E402
from .errors import WorkspaceHubError  # noqa: E402

PARAM_TYPES = ["String", "Integer", "Float", "Boolean"]
NAME = rf"^{IMAGE_NAME}$"

ENV_VAR = {
    "type": "object",
    "required": ["default"],
    "additionalProperties": False,
    "properties": {
        "type": {"enum": PARAM_TYPES},
        "default": {"type": ["string", "number", "boolean"]},
        "required": {"type": "boolean"},
        "range": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        "choices": {"type": "array", "minItems": 1},
        "description": {"type": "string", "maxLength": 500},
    },
}

# A purpose's second level depends on its first (manual 2.1.1): the tasks the pages offer for each.  The API
# takes any slug as the second level, so that items registered before a task was listed stay valid.
PURPOSE_TASKS = {
    "image": ["classification", "detection", "segmentation", "ocr"],
    "text": ["classification", "ner", "sentiment", "summarization"],
    "audio": ["classification", "recognition"],
    "video": ["classification", "detection"],
    "tabular": ["classification", "regression"],
    "other": ["other", "notebook"],
}
# How a dataset is annotated (manual 2.1.1: detection and segmentation are both "location"); the pages offer
# these, the API takes any slug.
ANNOTATIONS = {"classification": "a label per example", "location": "boxes or regions (detection, segmentation)",
               "entity": "entities in text", "text": "text (transcription, translation)", "manual": "other"}

SCHEMA = {
    "type": "object",
    "required": ["name", "version", "purpose", "kind", "device", "command"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": NAME},
        "version": {"type": "string", "pattern": r"^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$"},
        "description": {"type": "string", "maxLength": 2000},
        "purpose": {
            "type": "object", "required": ["first", "second"], "additionalProperties": False,
            "properties": {"first": {"enum": list(PURPOSE_TASKS)},
                           "second": {"type": "string", "pattern": r"^[a-z][a-z0-9_-]{0,39}$"}},
        },
        "kind": {"enum": ["train", "predict"]},
        "framework": {"type": "string", "maxLength": 40},
        "env": {"type": "string", "maxLength": 40},
        "device": {"enum": ["cpu", "gpu"]},
        "command": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "args": {"type": "array", "items": {"type": "string"}},
        "env_vars": {"type": "object", "propertyNames": {"pattern": r"^[A-Z][A-Z0-9_]{0,63}$"},
                     "additionalProperties": ENV_VAR},
        "transfer_training": {"type": "boolean"},
        "dataset_format": {"enum": list(DATASET_FORMATS)},
        "notebook": {"type": "string"},
        "interface": {
            "type": "object", "required": ["name", "method", "params"], "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z_][a-z0-9_]{0,39}$"},
                "method": {"enum": ["POST", "GET"]},
                "param_format": {"enum": ["json", "params"]},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "params": {"type": "array", "items": {
                    "type": "object", "required": ["name", "type"], "additionalProperties": False,
                    "properties": {"name": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,39}$"},
                                   "type": {"enum": PARAM_TYPES},
                                   "required": {"type": "boolean"},
                                   "test_value": {},
                                   "description": {"type": "string", "maxLength": 500}}}},
            },
        },
    },
    "if": {"properties": {"kind": {"const": "predict"}}},
    "then": {"required": ["interface"]},
}


class AlgorithmError(WorkspaceHubError, ValueError):
    """algorithm.yaml is missing or invalid; ``problems`` lists 'key.path: message' lines."""

    def __init__(self, path: Path, problems: list[str]):
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def field_name(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def check_algorithm(data) -> list[str]:
    """Problems of an algorithm.yaml document, each naming its key; empty when valid."""
    errors = sorted(Draft202012Validator(SCHEMA).iter_errors(data), key=lambda e: list(e.absolute_path))
    return [f"{field_name(e.absolute_path)}: {e.message}" for e in errors]


def load_algorithm(project: str | Path) -> dict:
    """Read and check ``<project>/algorithm.yaml``; raise :class:`AlgorithmError` when it is bad."""
    path = Path(project) / "algorithm.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AlgorithmError(path, ["missing: every project needs an algorithm.yaml (see the handbook, "
                                    "or `ws new` for a template)"]) from None
    except yaml.YAMLError as e:
        raise AlgorithmError(path, [f"not valid YAML: {e}"]) from None
    if problems := check_algorithm(data):
        raise AlgorithmError(path, problems)
    return data
