"""The image contract has one home, and the cookiecutter hook (which cannot import it) agrees with it."""

import re

import pytest

from workspace_hub import contract
from workspace_hub.catalog import REPO_ROOT

HOOK = REPO_ROOT / "templates" / "project" / "hooks" / "pre_gen_project.py"


def hook_image_rule() -> str:
    [rule] = re.findall(r're\.fullmatch\(r"([^"]+)", IMAGE_NAME\)', HOOK.read_text())
    return rule


def test_the_template_hook_checks_image_names_with_the_contracts_rule():
    assert hook_image_rule() == contract.IMAGE_NAME


@pytest.mark.parametrize("name", ["text-classify-bayes", "a", "a.b_c-1", "x" * 63, "", "-a", "A", "a/b",
                                  "x" * 64, "ü"])
def test_a_name_the_hook_accepts_makes_a_tar_name_the_validator_accepts(name):
    accepted_by_hook = re.fullmatch(hook_image_rule(), name) is not None
    assert accepted_by_hook == bool(contract.TAR_NAME.match(contract.tar_name("train", name, "cpu")))


def test_no_module_spells_a_label_or_the_tar_rule_again():
    """Labels and the name rule appear as literals only in contract.py (and the hook, checked above)."""
    offenders = []
    for path in list((REPO_ROOT / "workspace_hub").glob("*.py")) + list((REPO_ROOT / "workspace_library").glob("*.py")):
        if path.name == "contract.py":
            continue
        text = path.read_text()
        if re.search(r'"ai\.platform\.\w+"', text) or "(train|predict)" in text or '"/project/model"' in text:
            offenders.append(path.name)
    assert offenders == []
