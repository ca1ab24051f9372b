"""The image contract in one place: what ``ws build`` writes, ``ws validate`` checks and the platform runs.

The handbook (``help_doc/README.md``, sections 4 and 6) explains each rule to
users; this module is the only place the code spells them.  The cookiecutter
hook keeps its own copy of :data:`IMAGE_NAME` (a template cannot import the
package); ``tests/unit/test_contract.py`` checks that the two are the same rule.
"""

from __future__ import annotations

import re

# -- the tar's file name: (train|predict)-<name>-(cpu|gpu).tar ---------------------------------
KINDS = ("train", "predict")
DEVICES = ("cpu", "gpu")
IMAGE_NAME = r"[a-z0-9][a-z0-9._-]{0,62}"
TAR_NAME = re.compile(rf"^({'|'.join(KINDS)})-({IMAGE_NAME})-({'|'.join(DEVICES)})\.tar$")
TAR_NAME_RULE = (f"train-<name>-<cpu|gpu>.tar or predict-<name>-<cpu|gpu>.tar, with <name> matching {IMAGE_NAME}")


def tar_name(kind: str, name: str, device: str) -> str:
    return f"{kind}-{name}-{device}.tar"


# -- labels the image carries ------------------------------------------------------------------
LABEL_KIND = "ai.platform.kind"
LABEL_DEVICE = "ai.platform.device"
LABEL_FRAMEWORK = "ai.platform.framework"
LABEL_ALGORITHM = "ai.platform.algorithm"  # the whole algorithm.yaml, as JSON
LABEL_PORT = "ai.platform.port"
LABEL_INTERFACE = "ai.platform.interface"  # the predict interface, as JSON

# -- paths inside containers -------------------------------------------------------------------
WORKSPACE_ROOT = "/project"
MODEL_DIR = f"{WORKSPACE_ROOT}/model"
DATASET_DIR = f"{WORKSPACE_ROOT}/dataset"
BASE_IMAGE_MOUNT = "/opt/workspace-hub/base-image"  # the env's `docker save` folder, read by `ws build`
MAX_MODEL_FILES = 10_000  # what a model folder may hold, wherever it is kept (smoke runs, the registry)
MAX_MODEL_BYTES = 4 * 1024**3

# -- datasets (the handbook's section 10 defines each format) ----------------------------------
DATASET_FORMATS = ("dir", "json", "single_text", "brat_ann")
TEST_DATASET_DIR = f"{WORKSPACE_ROOT}/dataset_test"  # the independent test set, when a dataset has one
# Variables a training run sets itself (from the dataset's test-set mode, its recorded seed, a parent model):
# an algorithm may declare them with defaults for local runs, but a run never takes them as hyperparameters.
RUN_VARIABLES = ("TRAIN_RATIO", "SEED", "PRETRAINED_MODEL", "TEST_DATASET_DIR")
PRETRAINED_DIR = f"{WORKSPACE_ROOT}/pretrained"  # transfer training: the parent model, read-only ($PRETRAINED_MODEL)

# -- serving -----------------------------------------------------------------------------------
DEFAULT_PORT = 8080
# Dynamic batching, off unless MAX_BATCH_SIZE is over 1: concurrent calls that arrive within MAX_BATCH_WAIT_MS
# of the first go to one call of the model's batch function, each getting its own answer (section 7).
BATCH_VARIABLES = ("MAX_BATCH_SIZE", "MAX_BATCH_WAIT_MS")
