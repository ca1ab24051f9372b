"""Project names, datasets and the mount plan: the rules every profile shares."""

import pytest

from workspace_hub.projects import (
    InvalidChoice,
    Mount,
    Project,
    check_dataset,
    check_project_name,
    mount_plan,
)


@pytest.mark.parametrize("name", ["demo", "text-classify", "a", "a1-b2", "x" * 30])
def test_valid_project_names(name):
    assert check_project_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "Demo", "../etc", "a/b", "x" * 31, "-lead", "trail-", "dou--ble", "1st", "naïve", "a b"],
)
def test_invalid_project_names_name_the_rule(name):
    with pytest.raises(InvalidChoice, match="lowercase"):
        check_project_name(name)


def test_mount_plan_without_dataset(data_root):
    project = Project(data_root, "alice", "demo")
    assert mount_plan(project, None) == [
        Mount("users/alice/demo/code", "/project/code", False),
        Mount("users/alice/demo/model", "/project/model", False),
        Mount("users/alice/demo/docker_image", "/project/docker_image", False),
        Mount("users/alice/demo/.home", "/home/jovyan", False),
        Mount("help_doc", "/project/help_doc", True),
    ]


def test_dataset_is_mounted_read_only(data_root):
    plan = mount_plan(Project(data_root, "alice", "demo"), "flowers")
    assert plan[-1] == Mount("datasets/flowers", "/project/dataset", True)


def test_unsafe_usernames_get_a_safe_folder(data_root):
    project = Project(data_root, "Bob@Example.com", "demo")
    assert "@" not in project.relative and project.relative.startswith("users/bob")


@pytest.mark.parametrize(
    "name, message",
    [("missing", "does not exist"), ("../users", "Invalid dataset"), ("a/b", "Invalid dataset"),
     (".hidden", "Invalid dataset")],
)
def test_bad_datasets_are_refused(data_root, name, message):
    with pytest.raises(InvalidChoice, match=message):
        check_dataset(data_root, name)


def test_dataset_symlink_out_of_the_data_root_is_refused(data_root, tmp_path):
    (data_root / "datasets" / "escape").symlink_to(tmp_path)
    with pytest.raises(InvalidChoice, match="not allowed"):
        check_dataset(data_root, "escape")


def test_create_dirs_makes_the_layout(data_root):
    project = Project(data_root, "alice", "demo")
    project.create_dirs(1000, 1000)
    for sub in ("code", "model", "docker_image", ".home"):
        path = project.path / sub
        assert path.is_dir()
        if __import__("os").geteuid() == 0:
            assert (path.stat().st_uid, path.stat().st_gid) == (1000, 1000)
