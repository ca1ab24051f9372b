"""`ws import git`: clones into /project/code with depth 1, and refuses what is unsafe."""

import subprocess

import pytest

from workspace_hub.scaffold import ScaffoldError, import_git


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A workspace root with code/, and a bare repository inside it."""
    root = tmp_path / "project"
    (root / "code").mkdir(parents=True)
    monkeypatch.setenv("WORKSPACE_ROOT", str(root))
    source = tmp_path / "src"
    source.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(source)], check=True)
    (source / "train.py").write_text("print('train')\n")
    subprocess.run([*git, "-C", str(source), "add", "."], check=True)
    subprocess.run([*git, "-C", str(source), "commit", "-qm", "first"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(root / "repos" / "demo.git")], check=True)
    return root


def test_a_local_bare_repository_in_the_workspace_is_cloned(workspace):
    target = import_git(str(workspace / "repos" / "demo.git"))
    assert target == workspace / "code" / "demo"
    assert (target / "train.py").read_text() == "print('train')\n"
    assert subprocess.run(["git", "-C", str(target), "rev-list", "--count", "HEAD"],
                          capture_output=True, text=True).stdout.strip() == "1"


def test_ext_urls_are_refused_and_run_nothing(workspace, tmp_path):
    pwned = tmp_path / "pwned"
    with pytest.raises(ScaffoldError, match="transport helpers such as ext:: run commands"):
        import_git(f"ext::sh -c touch% {pwned}")
    assert not pwned.exists()


@pytest.mark.parametrize("url, message", [
    ("--upload-pack=touch /tmp/x", "looks like an option"),
    ("fd::17/foo", "transport helpers"),
    ("ftp://example.com/repo.git", "ftp:// protocol is not allowed"),
    ("/etc", "outside the workspace"),
    ("file:///etc", "outside the workspace"),
])
def test_unsafe_urls_are_refused(workspace, url, message):
    with pytest.raises(ScaffoldError, match=message):
        import_git(url)


def test_an_existing_target_is_refused(workspace):
    (workspace / "code" / "demo").mkdir()
    with pytest.raises(ScaffoldError, match="already exists"):
        import_git(str(workspace / "repos" / "demo.git"))


def test_a_repository_over_the_size_limit_is_refused_and_removed(workspace):
    with pytest.raises(ScaffoldError, match="over the 10-byte import limit"):
        import_git(str(workspace / "repos" / "demo.git"), limit=10)
    assert not (workspace / "code" / "demo").exists()


def test_a_failed_clone_prints_gits_message_without_gitpythons_quotes():
    from git.exc import GitCommandError

    from workspace_hub.scaffold import git_message

    error = GitCommandError(["git", "clone"], 128, b"fatal: repository 'x' does not exist\n")
    assert git_message(error) == "fatal: repository 'x' does not exist"
