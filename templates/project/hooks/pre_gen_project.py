"""Refuse template input that cannot make a valid project, naming the rule."""

import keyword
import re
import sys

PREFIX = "{{ cookiecutter.prefix }}"
INTERFACE = "{{ cookiecutter.interface_name }}"
SLUG = "{{ cookiecutter.project_slug }}"
IMAGE_NAME = "{{ cookiecutter.image_name }}"
FRAMEWORK = "{{ cookiecutter.framework }}"
TASK = "{{ cookiecutter.task }}"
TASK_FRAMEWORK = {"detect": "pytorch", "ner": "sklearn"}  # the samples that exist for each task


def refuse(message: str) -> None:
    print(f"ERROR: {message}", file=sys.stderr)
    sys.exit(1)


if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", PREFIX) or len(PREFIX) > 40:
    refuse(f"prefix {PREFIX!r}: use 1-40 lowercase ASCII letters, digits and single hyphens, starting with "
           "a letter (it names the project folder, the image and the JupyterHub server)")
if not INTERFACE.isascii() or not INTERFACE.isidentifier() or INTERFACE != INTERFACE.lower() or len(INTERFACE) > 40:
    refuse(f"interface_name {INTERFACE!r}: use a lowercase ASCII identifier such as 'classification_param' "
           "(it becomes the URL path POST /<interface_name> and a Python function name)")
if keyword.iskeyword(INTERFACE):
    refuse(f"interface_name {INTERFACE!r} is a Python keyword; choose another name")
if INTERFACE in {"health", "docs", "metrics"}:
    refuse(f"interface_name {INTERFACE!r} is reserved by the inference contract; choose another name")
if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,62}", IMAGE_NAME):
    refuse(f"image name {IMAGE_NAME!r} breaks the image rule [a-z0-9][a-z0-9._-]{{0,62}}; shorten the prefix")
if TASK in TASK_FRAMEWORK and FRAMEWORK != TASK_FRAMEWORK[TASK]:
    refuse(f"task {TASK!r} has a {TASK_FRAMEWORK[TASK]} sample only; choose framework {TASK_FRAMEWORK[TASK]!r}")
