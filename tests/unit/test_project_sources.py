"""A new project's code from its page (manual 2.6.2): a sample, the generator, an archive or a git URL.

The code lands in the caller's own project, owned by the workspace user, and only while the project is new;
whatever is refused leaves nothing behind."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import threading
import wsgiref.simple_server
from pathlib import Path

import pytest

from harness.tenants import zipped
from workspace_hub.projects import Project


def project(library, user: str, name: str) -> Project:
    service, _ = library
    return Project(Path(service.data_root).resolve(), user, name)


def code_of(library, user: str, name: str) -> list[str]:
    code = project(library, user, name).path / "code"
    return sorted(p.relative_to(code).as_posix() for p in code.rglob("*")) if code.is_dir() else []


def test_a_sample_fills_a_new_project_owned_by_the_workspace_user(as_, library):
    answer = as_["owner"]("POST", "projects/bayes/code", json={"source": "sample", "sample": "text-classify-bayes"})
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"project": "bayes", "folders": ["text-classify-bayes-api-demo",
                                                             "text-classify-bayes-train-demo"]}
    train = project(library, "olive", "bayes").path / "code" / "text-classify-bayes-train-demo"
    assert (train / "algorithm.yaml").is_file()
    assert {os.lstat(p).st_uid for p in [train, *train.rglob("*")]} == {1000}
    # the project is the caller's own: another user's project of that name is untouched
    assert code_of(library, "oscar", "bayes") == []


def test_code_comes_in_only_while_the_project_is_new(as_, library):
    assert as_["owner"]("POST", "projects/twice/code", json={"source": "sample", "sample": "text-classify-bayes"}
                        ).status_code == 201
    again = as_["owner"]("POST", "projects/twice/code", json={"source": "generator", "prefix": "news",
                                                             "interface": "classify_text", "framework": "sklearn"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "project-exists"
    assert "ws import git" in again.json()["error"]["message"]
    assert not any(name.startswith("news") for name in os.listdir(project(library, "olive", "twice").path / "code"))


def test_the_generator_makes_a_train_and_an_api_folder_wired_to_the_interface(as_, library):
    answer = as_["owner"]("POST", "projects/news/code", json={"source": "generator", "prefix": "news",
                                                             "interface": "classify_text", "framework": "sklearn"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["folders"] == ["news-api", "news-train"]
    api = project(library, "olive", "news").path / "code" / "news-api"
    assert "classify_text" in (api / "algorithm.yaml").read_text()


@pytest.mark.parametrize("body, field", [
    ({"prefix": "{{ cycler.__init__.__globals__.os.popen('id').read() }}"}, "prefix"),  # cookiecutter renders Jinja
    ({"prefix": "News"}, "prefix"),
    ({"interface": "class"}, "interface"),
    ({"interface": "health"}, "interface"),
    ({"framework": "caffe"}, "framework"),
    ({"interface": None}, "interface"),
])
def test_the_generator_refuses_what_would_not_make_a_project_and_leaves_nothing(as_, library, body, field):
    data = {"source": "generator", "prefix": "ok", "interface": "predict", "framework": "sklearn", **body}
    answer = as_["owner"]("POST", "projects/refused/code", json=data)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == field
    assert code_of(library, "olive", "refused") == []


@pytest.fixture
def small_limit(library):
    service, _ = library
    service.project_code_max_bytes = 1000
    yield
    service.project_code_max_bytes = 1024**3


def test_an_archive_lands_under_its_own_names(as_, library):
    body = zipped({"src/train.py": b"print('train')\n", "README.md": b"# mine\n", "files/x.py": b"",
                   "code/.extract": b""})  # names the extraction itself could have used
    answer = as_["owner"]("POST", "projects/zipped/code/archive", data=body,
                          headers={"Content-Type": "application/octet-stream"})
    assert answer.status_code == 201, answer.text
    assert code_of(library, "olive", "zipped") == ["README.md", "code", "code/.extract", "files", "files/x.py", "src",
                                                   "src/train.py"]
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as t:
        info = tarfile.TarInfo("model.py")
        info.size = 3
        t.addfile(info, io.BytesIO(b"x=1"))
    assert as_["owner"]("POST", "projects/tarred/code/archive", data=tgz.getvalue()).status_code == 201
    assert code_of(library, "olive", "tarred") == ["model.py"]


@pytest.mark.parametrize("files, code", [
    ({"../../../../etc/cron.d/evil": b"* * * * * root id\n"}, "archive-name"),
    ({"/etc/passwd": b"x"}, "archive-name"),
    ({"inner.zip": zipped({"a": b"b"})}, "archive-nested"),
    ({}, "empty-archive"),
    ({"a": b"x" * 2000}, "archive-too-large"),  # the service's limit is 1000 bytes here
])
def test_a_hostile_archive_is_refused_and_leaves_nothing(as_, library, files, code, small_limit):
    answer = as_["owner"]("POST", "projects/hostile/code/archive", data=zipped(files))
    assert answer.status_code == 400 and answer.json()["error"]["code"] == code, answer.text
    assert code_of(library, "olive", "hostile") == []
    assert not list((Path(library[0].data_root) / "library" / "uploads").glob("code-*"))


def test_a_code_folder_swapped_for_a_link_is_never_written_through(as_, library, tmp_path):
    elsewhere = tmp_path / "someone-else"
    elsewhere.mkdir()
    folder = project(library, "olive", "linked").path
    folder.mkdir(parents=True)
    (folder / "code").symlink_to(elsewhere)
    answer = as_["owner"]("POST", "projects/linked/code", json={"source": "sample", "sample": "text-classify-bayes"})
    assert answer.status_code == 409, answer.text
    assert list(elsewhere.iterdir()) == []


def test_the_caller_must_be_logged_in_and_name_a_project(as_):
    assert as_["anonymous"]("POST", "projects/x/code", json={"source": "sample", "sample": "text-classify-bayes"}
                            ).status_code in (401, 403)
    assert as_["anonymous"]("POST", "projects/x/code/archive", data=b"PK").status_code in (401, 403)
    assert as_["owner"]("POST", "projects/x/code", json={"source": "sample", "sample": "nope"}).status_code == 400
    assert as_["owner"]("POST", "projects/x/code", json={"source": "git"}).json()["error"]["field"] == "url"


@pytest.mark.parametrize("url, code", [
    ("ssh://git@example.org/repo.git", "git-protocol"),
    ("file:///etc", "git-protocol"),
    ("ext::sh", "git-protocol"),
    ("https://user:secret@example.org/repo.git", "git-credentials"),
    ("http://127.0.0.1:1/repo.git", "git-private-address"),
    ("http://[::1]:1/repo.git", "git-private-address"),
    ("http://169.254.169.254/latest/meta-data", "git-private-address"),  # a cloud's metadata service
    ("http://localhost:1/repo.git", "git-private-address"),
    ("http://[64:ff9b::a9fe:a9fe]/repo.git", "git-private-address"),  # NAT64 of 169.254.169.254
    ("http://[::ffff:8.8.8.8]/repo.git", "git-private-address"),  # IPv4-mapped: refused, never resolved further
    ("http://[2002:7f00:1::1]/repo.git", "git-private-address"),  # 6to4 of 127.0.0.1
    ("http://faß.example/repo.git", "invalid-field"),  # Python and curl turn it into different names
    ("http://example.org/a repo.git", "invalid-field"),
    ("http://example.org\n/repo.git", "invalid-field"),
])
def test_a_git_url_the_library_must_not_fetch_is_refused(as_, library, url, code):
    answer = as_["owner"]("POST", "projects/cloned/code", json={"source": "git", "url": url})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == code, answer.text
    assert code_of(library, "olive", "cloned") == []


def git_http_backend(root: Path):
    """A WSGI app that hands each request to ``git http-backend`` (git's own smart-HTTP server) as CGI."""
    def app(environ, start_response):
        env = {"GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1", "PATH": os.environ["PATH"],
               **{key: environ.get(key, "") for key in ("PATH_INFO", "QUERY_STRING", "REQUEST_METHOD",
                                                        "CONTENT_TYPE", "HTTP_CONTENT_ENCODING", "REMOTE_ADDR")}}
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=True).stdout
        head, _, rest = out.partition(b"\r\n\r\n")
        headers = [tuple(line.split(": ", 1)) for line in head.decode().split("\r\n")]
        start_response(dict((k.lower(), v) for k, v in headers).get("status", "200 OK"),
                       [(k, v) for k, v in headers if k.lower() != "status"])
        return [rest]
    return app


@pytest.fixture
def git_server(tmp_path):
    """A repository served on loopback over smart HTTP."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text("print('cloned')\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "."], ["git", "commit", "-qm", "first"]):
        subprocess.run(command, cwd=work, env=env, check=True)
    served = tmp_path / "served"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(served / "algo.git")], check=True)
    (work / "data.bin").write_bytes(b"0" * 100_000)  # compresses to a few bytes: a git bomb in small
    subprocess.run(["git", "add", "."], cwd=work, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "data"], cwd=work, env=env, check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(served / "algo.git-big")], check=True)
    server = wsgiref.simple_server.make_server("127.0.0.1", 0, git_http_backend(served),
                                               handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/algo.git"
    server.shutdown()


class QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def test_a_git_url_on_a_network_the_admin_allowed_is_cloned(as_, library, git_server):
    service, _ = library
    service.git_networks = ["127.0.0.0/8"]
    try:
        answer = as_["owner"]("POST", "projects/from-git/code", json={"source": "git", "url": git_server,
                                                                       "branch": "main"})
    finally:
        service.git_networks = []
    assert answer.status_code == 201, answer.text
    clone = project(library, "olive", "from-git").path / "code" / "algo"
    assert (clone / "train.py").read_text() == "print('cloned')\n"
    assert os.lstat(clone / ".git").st_uid == 1000
    missing = as_["owner"]("POST", "projects/no-branch/code", json={"source": "git", "url": git_server,
                                                                     "branch": "main"})
    assert missing.json()["error"]["code"] == "git-private-address"  # the allowance was the admin's, now gone


def test_a_repository_larger_than_the_limit_is_refused_before_it_is_checked_out(as_, library, git_server):
    service, _ = library
    service.git_networks, service.project_code_max_bytes = ["127.0.0.0/8"], 50_000  # the pack fits, the tree not
    try:
        answer = as_["owner"]("POST", "projects/big-git/code", json={"source": "git", "url": git_server + "-big"})
    finally:
        service.git_networks, service.project_code_max_bytes = [], 1024**3
    assert answer.status_code == 413 and "over the limit" in answer.json()["error"]["message"], answer.text
    assert code_of(library, "olive", "big-git") == []


def test_a_dropped_upload_keeps_nothing_and_frees_the_caller(as_, library):
    import socket
    import time
    from urllib.parse import urlsplit

    _, base = library
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port)) as raw:
        raw.sendall(f"POST {url.path}api/projects/dropped/code/archive HTTP/1.1\r\nHost: x\r\n"
                    "Authorization: token owner-token\r\nContent-Length: 100000\r\n\r\n".encode() + b"PK" * 500)
        time.sleep(0.5)
    uploads = Path(library[0].data_root) / "library" / "uploads"
    wait = time.monotonic() + 10
    while list(uploads.glob("code-*")) and time.monotonic() < wait:
        time.sleep(0.1)
    assert not list(uploads.glob("code-*"))
    answer = as_["owner"]("POST", "projects/dropped/code", json={"source": "sample", "sample": "text-classify-bayes"})
    assert answer.status_code == 201, answer.text  # the caller is not left "busy"
