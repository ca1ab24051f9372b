"""The project template, baked with pytest-cookies: every combination, edge inputs, bad inputs.

Running the baked projects inside their real env images is in
tests/integration/test_templates_in_envs.py.
"""

import itertools

import pytest
import yaml

from workspace_hub.algorithm import check_algorithm
from workspace_hub.scaffold import SAMPLES, templates_dir

TEMPLATE = str(templates_dir() / "project")
COMBINATIONS = list(itertools.product(["train", "api"], ["sklearn", "pytorch", "keras"]))


def bake(cookies, **context):
    return cookies.bake(template=TEMPLATE, extra_context=context)


def files(project) -> set[str]:
    return {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file() and "data" not in p.parts}


@pytest.mark.parametrize("kind, framework", COMBINATIONS)
def test_every_combination_bakes_a_complete_project(cookies, kind, framework):
    result = bake(cookies, prefix="demo", kind=kind, framework=framework, interface_name="classify")
    assert result.exit_code == 0, result.exception
    project = result.project_path
    assert project.name == f"demo-{kind}"
    entry = "src/train.py" if kind == "train" else "src/api.py"
    expected = {"algorithm.yaml", "Makefile", "README.md", "requirements.txt", "src/contract.py",
                "src/model.py", entry, "tests/test_project.py"}
    if framework != "sklearn":
        expected.add("src/images.py")
    assert files(project) == expected
    assert any((project / "data").iterdir())
    for path in project.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".yaml", ".md", ".txt", ""}:
            text = path.read_text(encoding="utf-8")
            assert "{{" not in text and "{%" not in text, path


@pytest.mark.parametrize("kind, framework", COMBINATIONS)
def test_algorithm_yaml_follows_the_schema(cookies, kind, framework):
    project = bake(cookies, prefix="demo", kind=kind, framework=framework).project_path
    algorithm = yaml.safe_load((project / "algorithm.yaml").read_text(encoding="utf-8"))
    assert check_algorithm(algorithm) == []
    assert algorithm["kind"] == ("train" if kind == "train" else "predict")
    assert algorithm["name"] == "demo"
    if kind == "api":
        assert algorithm["interface"]["params"][0]["test_value"]


def test_makefile_packs_with_ws_build_under_both_names(cookies):
    makefile = (bake(cookies, prefix="demo").project_path / "Makefile").read_text()
    assert "KIND := train" in makefile and "ws build . --kind $(KIND) --device cpu" in makefile
    assert "build_cpu save_cpu: build" in makefile


def test_the_text_sample_serves_classification_param(cookies):
    preset = SAMPLES["text-classify-bayes"]
    project = bake(cookies, prefix="text-classify-bayes", kind="api", framework=preset.framework,
                   interface_name=preset.interface).project_path
    interface = yaml.safe_load((project / "algorithm.yaml").read_text(encoding="utf-8"))["interface"]
    assert interface["name"] == "classification_param"
    assert interface["params"] == [{"name": "text", "type": "String", "required": True, "test_value": "足球",
                                    "description": "the text to classify"}]


@pytest.mark.parametrize("prefix, interface", [("a", "x"), ("a" * 40, "predict_2"), ("x1-y2", "_private")])
def test_edge_inputs_bake(cookies, prefix, interface):
    assert bake(cookies, prefix=prefix, interface_name=interface).exit_code == 0


@pytest.mark.parametrize(
    "context, message",
    [
        ({"prefix": ""}, "prefix ''"),
        ({"prefix": "Flower"}, "lowercase ASCII"),
        ({"prefix": "has space"}, "lowercase ASCII"),
        ({"prefix": "中文"}, "lowercase ASCII"),
        ({"prefix": "-lead"}, "lowercase ASCII"),
        ({"prefix": "a" * 41}, "1-40"),
        ({"prefix": "a--b"}, "single hyphens"),
        ({"interface_name": "class"}, "Python keyword"),
        ({"interface_name": "health"}, "reserved"),
        ({"interface_name": "has-dash"}, "lowercase ASCII identifier"),
        ({"interface_name": "Upper"}, "lowercase ASCII identifier"),
        ({"interface_name": "naïve"}, "lowercase ASCII identifier"),
    ],
)
def test_bad_inputs_are_refused_naming_the_rule(cookies, capfd, context, message):
    result = bake(cookies, **context)
    assert result.exit_code != 0 and result.project_path is None
    assert message in capfd.readouterr().err
