"""Keep the variant of the chosen framework and kind; delete the rest."""

import shutil
from pathlib import Path

FRAMEWORK = "{{ cookiecutter.framework }}"
KIND = "{{ cookiecutter.kind }}"
DATA = {"sklearn": "data-text", "pytorch": "data-digits", "keras": "data-digits"}[FRAMEWORK]

variants = Path("_variants")
shutil.move(variants / f"model_{FRAMEWORK}.py", "src/model.py")
shutil.move(variants / f"requirements_{FRAMEWORK}.txt", "requirements.txt")
shutil.move(variants / DATA, "data")
if FRAMEWORK != "sklearn":
    shutil.move(variants / "images.py", "src/images.py")
shutil.rmtree(variants)
Path("src/api.py" if KIND == "train" else "src/train.py").unlink()
