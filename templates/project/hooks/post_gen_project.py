"""Keep the variant of the chosen framework, task and kind; delete the rest."""

import shutil
from pathlib import Path

FRAMEWORK = "{{ cookiecutter.framework }}"
KIND = "{{ cookiecutter.kind }}"
TASK = "{{ cookiecutter.task }}"
DATA = {"detect": "data-shapes", "ner": "data-ner"}.get(
    TASK, {"sklearn": "data-text", "pytorch": "data-digits", "keras": "data-digits"}[FRAMEWORK])

variants = Path("_variants")
shutil.move(variants / (f"model_{FRAMEWORK}.py" if TASK == "classify" else f"model_{TASK}.py"), "src/model.py")
shutil.move(variants / f"requirements_{FRAMEWORK}.txt", "requirements.txt")
shutil.move(variants / DATA, "data")
if FRAMEWORK != "sklearn":
    shutil.move(variants / "images.py", "src/images.py")
shutil.rmtree(variants)
Path("src/api.py" if KIND == "train" else "src/train.py").unlink()
