"""The platform contract in code: paths, hyperparameters and datasets (see /project/help_doc).

Training reads the dataset from /project/dataset and writes the model and
metrics.json to /project/model.  Hyperparameters come from environment
variables with the defaults below; DATASET_DIR and MODEL_DIR override the
paths (for tests and local runs).  With no dataset mounted, the small sample
in ./data is used, so the project trains out of the box.  When the dataset
has an independent test set, a run mounts it at /project/dataset_test and
sets TEST_DATASET_DIR: the model is evaluated on it and TRAIN_RATIO is unused.
"""

import json
import os
import random
import sys
from pathlib import Path

DEFAULTS = {
    "EPOCHS": {{ 60 if cookiecutter.task == "detect" else 20 if cookiecutter.framework != "sklearn" else 5 }},{{ "  " if cookiecutter.task == "detect" or cookiecutter.framework != "sklearn" else "   " }}         # passes over the training data
    "BATCH_SIZE": 16,       # examples per step
    "LEARNING_RATE": {{ 0.002 if cookiecutter.task == "detect" else 0.01 }},{{ "" if cookiecutter.task == "detect" else " " }} # optimizer step size
    "IMG_SIZE": 8,          # image side in pixels (image tasks)
    "DEVICE": "cpu",        # cpu or cuda
    "TRAIN_RATIO": 0.8,     # share used for training when no test split exists
    "SEED": 0,              # the split's (and the model's) random seed; a training run records its own
}
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def setting(name: str):
    """The hyperparameter *name* from the environment, typed like its default."""
    default = DEFAULTS[name]
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = type(default)(raw)
    except ValueError:
        sys.exit(f"{name}={raw!r} is not a valid {type(default).__name__} (default {default})")
    if name == "TRAIN_RATIO" and not 0 < value < 1:
        sys.exit(f"TRAIN_RATIO={raw} must be a fraction between 0 and 1, such as 0.8")
    return value


def dataset_dir() -> Path:
    """/project/dataset (or $DATASET_DIR); the shipped sample when none is mounted."""
    path = Path(os.environ.get("DATASET_DIR", "/project/dataset"))
    if path.is_dir() and any(path.iterdir()):
        return path
    log(f"no dataset at {path}; using the sample in {PROJECT_ROOT / 'data'}")
    return PROJECT_ROOT / "data"


def test_dataset_dir() -> Path | None:
    """$TEST_DATASET_DIR: the dataset's independent test set, which a training run mounts and names when the
    dataset has one (TRAIN_RATIO then does not apply); None: split /project/dataset with TRAIN_RATIO."""
    value = os.environ.get("TEST_DATASET_DIR")
    if not value:
        return None
    path = Path(value)
    if not path.is_dir() or not any(path.iterdir()):
        sys.exit(f"TEST_DATASET_DIR={value} is not a folder holding the test set")
    return path


def model_dir() -> Path:
    path = Path(os.environ.get("MODEL_DIR", "/project/model"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def pretrained_model() -> Path | None:
    """$PRETRAINED_MODEL: a model folder to start from (transfer training)."""
    value = os.environ.get("PRETRAINED_MODEL")
    if value and not Path(value).exists():
        sys.exit(f"PRETRAINED_MODEL={value} does not exist")
    return Path(value) if value else None


def read_dir_dataset(root: Path, suffixes: tuple[str, ...]) -> list[tuple[Path, str]]:
    """The `dir` format: one folder per class, holding that class's files."""
    items = [(f, d.name) for d in sorted(root.iterdir()) if d.is_dir()
             for f in sorted(d.iterdir()) if f.suffix.lower() in suffixes]
    if len({label for _, label in items}) < 2:
        sys.exit(f"{root}: the dir format needs at least two class folders with {'/'.join(suffixes)} files")
    return items


def split(items: list, ratio: float, seed: int = 0) -> tuple[list, list]:
    items = list(items)
    random.Random(seed).shuffle(items)
    cut = max(1, min(len(items) - 1, int(len(items) * ratio)))
    return items[:cut], items[cut:]


def write_metrics(metrics: dict) -> Path:
    path = model_dir() / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return path


def log(message: str) -> None:
    print(message, flush=True)


def metric(**values) -> None:
    """One metric line, ``metric: epoch=1 loss=0.42``: the platform charts these while the run trains."""
    print("metric: " + " ".join(f"{name}={value}" for name, value in values.items()), flush=True)
