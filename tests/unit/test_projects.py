"""Project names, datasets and the mount plan: the rules every profile shares."""

import pytest

from workspace_hub.projects import (
    DatasetMount,
    InvalidChoice,
    Mount,
    Project,
    check_project_name,
    mount_plan,
    user_dir_name,
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


def test_a_dataset_mounts_each_split_read_only(data_root):
    dataset = DatasetMount("k", "news 1 (dir)", {"train": "library/trees/a", "test": "library/trees/b"})
    plan = mount_plan(Project(data_root, "alice", "demo"), dataset)
    assert plan[-2:] == [Mount("library/trees/a", "/project/dataset", True),
                         Mount("library/trees/b", "/project/dataset_test", True)]


def test_unsafe_usernames_get_a_safe_folder(data_root):
    project = Project(data_root, "Bob@Example.com", "demo")
    assert "@" not in project.relative and project.relative.startswith("users/bob")


def test_create_dirs_makes_the_layout(data_root):
    project = Project(data_root, "alice", "demo")
    project.create_dirs(1000, 1000)
    for sub in ("code", "model", "docker_image", ".home"):
        path = project.path / sub
        assert path.is_dir()
        if __import__("os").geteuid() == 0:
            assert (path.stat().st_uid, path.stat().st_gid) == (1000, 1000)


SLUG_EDGE_CASES = ["a.b", "a-b-2e7336dc", "a-b", "a_b", "A-B", "a@b", "a:b", "a--b", "-a", "a-", "1a", "ü",
                   "üser", "a" * 63, "a" * 64, "a" * 200, "", " ", "a b", "a/b", "..", "service:publish",
                   "x-" + "0" * 8, "user--e3b0c44298fc1c149afbf4c8996fb924"]


def test_user_folders_are_one_to_one_over_jupyterhubs_slug_edge_cases():
    from jupyterhub.slugs import safe_slug

    folders = [user_dir_name(name) for name in SLUG_EDGE_CASES]
    assert len(set(folders)) == len(SLUG_EDGE_CASES)
    assert all("/" not in f and f not in (".", "..") and len(f) <= 63 for f in folders)
    # the old mapping (the name if safe, else safe_slug) gave both of these the folder a-b-2e7336dc
    assert safe_slug("a.b") == "a-b-2e7336dc" and user_dir_name("a-b-2e7336dc") == "a-b-2e7336dc"
    assert user_dir_name("a.b") != "a-b-2e7336dc"


def test_an_old_folder_moves_to_its_new_name_unless_another_user_owns_that_name(tmp_path):
    from jupyterhub.slugs import safe_slug

    from workspace_hub.projects import migrate_user_dir

    old = tmp_path / "users" / safe_slug("a.b")
    (old / "proj" / "code").mkdir(parents=True)
    assert migrate_user_dir(tmp_path, "a.b", user_exists=lambda name: True) is None  # ambiguous: left alone
    assert old.is_dir()
    moved = migrate_user_dir(tmp_path, "a.b", user_exists=lambda name: False)
    assert moved == tmp_path / "users" / user_dir_name("a.b") and (moved / "proj" / "code").is_dir()
    assert not old.exists()
