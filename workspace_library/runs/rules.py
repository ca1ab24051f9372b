"""Run rules, without HTTP: what a run may train, with which settings, and who sees and controls it.

- A run trains an **online** algorithm version that has a validated train image, on an **online**
  dataset version of a format the algorithm reads (its ``dataset_format``, when it declares one),
  both visible to the caller.
- Hyperparameters are the algorithm's ``env_vars`` (``algorithm.yaml``): each value is checked
  against its type, range and choices before anything is queued; required ones must be given;
  unknown names are refused.  Defaults fill the rest.
- Resources stay within the admin's limits; GPU only where the engine has one.
- Runs are private to their owner (and admins): to anyone else they do not exist.
- ``draft -> queued -> starting -> running -> succeeded | failed``; ``stopping -> stopped``.
  Only drafts and finished runs are edited or deleted; a rerun copies a run's settings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy.orm import Session

from workspace_hub.algorithm import NAME
from workspace_hub.contract import RUN_VARIABLES

from ..access import Who, require_usable
from ..errors import LibraryError
from ..models import Dataset, Run, RunStatus, Status, now
from ..rules import TEXT, schema

FINISHED = (RunStatus.succeeded, RunStatus.failed, RunStatus.stopped)
RESOURCES = {"type": "object", "additionalProperties": False,
             "properties": {"device": {"enum": ["cpu", "gpu"]}, "mem_gb": {"type": "number", "minimum": 0.25},
                            "cpus": {"type": "number", "minimum": 0.1}}}
FIELDS = {
    "name": {"type": "string", "pattern": NAME},
    "description": TEXT,
    "algorithm": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "dataset": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "hyperparameters": {"type": "object", "maxProperties": 64},
    "resources": RESOURCES,
    "max_runtime": {"type": "integer", "minimum": 10, "maximum": 2**31 - 1},
    "train_ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
    "parent_model": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "start": {"type": "boolean"},
}
SCHEMAS = {
    "run-create": schema(FIELDS, ["name", "algorithm", "dataset"]),
    "run-edit": schema({k: v for k, v in FIELDS.items() if k not in ("start",)}, []),
    # a one-click transfer run from a model: its name and dataset (the model's run gives the rest)
    "model-transfer": schema({"name": FIELDS["name"], "dataset": FIELDS["dataset"]}, []),
}


@dataclass(frozen=True)
class RunLimits:
    """The admin's settings for one run."""

    max_mem_gb: float = 8
    max_cpus: float = 4
    max_runtime: int = 24 * 3600
    gpu: bool = False


def typed(env_vars: dict, values: dict) -> dict:
    """Hyperparameters a run recorded (as text) back as the values its algorithm declares (a rerun, a transfer)."""
    kinds = {"Integer": int, "Float": float, "Boolean": lambda text: text == "true"}
    out = {}
    for name, text in values.items():
        kind = kinds.get((env_vars.get(name) or {}).get("type", "String"))
        try:
            out[name] = kind(text) if kind else text
        except ValueError:
            out[name] = text  # refused, with its name, by check_hyperparameters
    return out


def check_hyperparameters(env_vars: dict, given: dict) -> dict:
    """The values to pass, as strings by name; a 400 naming ``hyperparameters.<NAME>`` for the first bad one."""
    platform = sorted(set(given) & set(RUN_VARIABLES))
    if platform:
        raise LibraryError(400, "invalid-field", f"{platform[0]} is set by the run (train_ratio, seed), not as a "
                           "hyperparameter", f"hyperparameters.{platform[0]}")
    env_vars = {name: spec for name, spec in env_vars.items() if name not in RUN_VARIABLES}
    unknown = sorted(set(given) - set(env_vars))
    if unknown:
        raise LibraryError(400, "invalid-field", f"{unknown[0]} is not a hyperparameter of this algorithm; it takes "
                           f"{', '.join(sorted(env_vars)) or 'none'}", f"hyperparameters.{unknown[0]}")
    values = {}
    for name, spec in sorted(env_vars.items()):
        field = f"hyperparameters.{name}"
        if name not in given:
            if spec.get("required"):
                raise LibraryError(400, "invalid-field", f"{name} is required", field)
            values[name] = _text(spec.get("default"))
            continue
        value, kind = given[name], spec.get("type", "String")
        if kind == "Integer" and not (isinstance(value, int) and not isinstance(value, bool)):
            raise LibraryError(400, "invalid-field", f"{name} must be a whole number", field)
        if kind == "Float" and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            raise LibraryError(400, "invalid-field", f"{name} must be a number", field)
        if kind == "Boolean" and not isinstance(value, bool):
            raise LibraryError(400, "invalid-field", f"{name} must be true or false", field)
        if kind == "String" and not (isinstance(value, str) and len(value) <= 1000):
            raise LibraryError(400, "invalid-field", f"{name} must be text of at most 1000 characters", field)
        if "range" in spec and not spec["range"][0] <= value <= spec["range"][1]:
            raise LibraryError(400, "invalid-field", f"{name} must be between {spec['range'][0]} and "
                               f"{spec['range'][1]}", field)
        if "choices" in spec and value not in spec["choices"]:
            raise LibraryError(400, "invalid-field", f"{name} must be one of {', '.join(map(str, spec['choices']))}",
                               field)
        values[name] = _text(value)
    return values


def _text(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def check_resources(resources: dict, limits: RunLimits) -> dict:
    resources = {"device": "cpu", "mem_gb": min(2, limits.max_mem_gb), "cpus": min(2, limits.max_cpus), **resources}
    if resources["device"] == "gpu" and not limits.gpu:
        raise LibraryError(400, "invalid-field", "this engine has no GPU; train on cpu", "resources.device")
    if resources["mem_gb"] > limits.max_mem_gb:
        raise LibraryError(400, "invalid-field", f"at most {limits.max_mem_gb} GB of memory per run (the admin's "
                           "limit)", "resources.mem_gb")
    if resources["cpus"] > limits.max_cpus:
        raise LibraryError(400, "invalid-field", f"at most {limits.max_cpus} CPUs per run (the admin's limit)",
                           "resources.cpus")
    return resources


def resolve(session: Session, who: Who, data: dict, limits: RunLimits, typed_values: bool = True) -> dict:
    """The columns of a run from a request: the algorithm, dataset and parent model checked, now, as *who*
    may use them, and settings filled in.  With *typed_values* False the hyperparameters are a recorded
    run's text values (:func:`settings`)."""
    algorithm, parent = require_usable(session, who, data["algorithm"], (data["dataset"],),
                                       data.get("parent_model"))
    train = [i for i in algorithm.images if i.role == "train" and i.tag]
    if algorithm.status != Status.online or not train or not algorithm.train:
        raise LibraryError(409, "algorithm-not-ready", f"{algorithm.name} {algorithm.version} is "
                           f"{algorithm.status.value}{'' if train else ' and has no validated train image'}; train "
                           "with an online algorithm that has one", "algorithm")
    dataset = session.get(Dataset, data["dataset"])
    if dataset.status != Status.online:
        raise LibraryError(409, "dataset-not-online", f"{dataset.name} {dataset.version} is {dataset.status.value}; "
                           "bring it online first", "dataset")
    wanted = (algorithm.train or {}).get("dataset_format")
    if wanted and wanted != dataset.format:
        raise LibraryError(409, "format-mismatch", f"{algorithm.name} reads {wanted} datasets; {dataset.name} is "
                           f"{dataset.format}", "dataset")
    max_runtime = data.get("max_runtime", min(3600, limits.max_runtime))
    if max_runtime > limits.max_runtime:
        raise LibraryError(400, "invalid-field", f"at most {limits.max_runtime} s per run (the admin's limit)",
                           "max_runtime")
    independent = dataset.test_mode == "independent"
    env_vars = (algorithm.train or {}).get("env_vars") or {}
    given = data.get("hyperparameters") or {}
    if parent is not None and not algorithm.transfer_training:
        raise LibraryError(409, "no-transfer", f"{algorithm.name} {algorithm.version} does not support transfer "
                           "training (its algorithm.yaml says transfer_training: false); train from scratch",
                           "parent_model")
    return {
        "name": data["name"], "description": data.get("description", ""), "algorithm_id": algorithm.id,
        "dataset_id": dataset.id, "algorithm_label": f"{algorithm.owner}/{algorithm.name} {algorithm.version}",
        "dataset_label": f"{dataset.owner}/{dataset.name} {dataset.version}", "image": train[0].tag,
        "dataset_manifests": dict(dataset.manifests),
        "hyperparameters": check_hyperparameters(env_vars, given if typed_values else typed(env_vars, given)),
        "resources": check_resources(data.get("resources") or {}, limits), "max_runtime": max_runtime,
        "train_ratio": None if independent else data.get("train_ratio", 0.8),
        "seed": data.get("seed", random.randrange(2**31)),
        "parent_model_id": parent.id if parent else None, "parent_manifest": parent.manifest if parent else "",
    }


def settings(run: Run) -> dict:
    """A recorded run as the request that would make it again (hyperparameters as recorded text)."""
    return {"name": run.name, "description": run.description, "algorithm": run.algorithm_id,
            "dataset": run.dataset_id, "hyperparameters": dict(run.hyperparameters), "resources": run.resources,
            "max_runtime": run.max_runtime, "seed": run.seed,
            **({"parent_model": run.parent_model_id} if run.parent_model_id else {}),
            **({"train_ratio": run.train_ratio} if run.train_ratio is not None else {})}


def again(session: Session, who: Who, run: Run, limits: RunLimits) -> dict:
    """The columns of *run* resolved anew as *who*, for a start or a rerun: what was visible when the run
    was saved or first ran proves nothing now.  An input deleted meanwhile is a 409 naming it."""
    data = settings(run)
    for field in ("algorithm", "dataset"):
        if data[field] is None:
            raise LibraryError(409, "input-gone", f"the {field} of run {run.name} was deleted; train a new run",
                               field)
    return resolve(session, who, data, limits, typed_values=False)


def queue(run: Run) -> None:
    if run.status not in (RunStatus.draft,):
        raise LibraryError(409, "status", f"run {run.name} is {run.status.value}; only a draft starts (rerun a "
                           "finished run)")
    run.status, run.queued_at = RunStatus.queued, now()
