"""Code brought into a new project from the page (manual 2.6.2): a sample, the generator, a zip, or a git URL.

Each way fills a staging folder that only the library can write (under its own data), and :func:`place` then
moves what it holds into the project's ``code`` folder, which must be empty: the user's folders are written by
their workspace, so the move goes through a descriptor opened one component at a time with ``O_NOFOLLOW``
(as :mod:`.code` reads them), and every staged file is handed to the workspace user before it moves.

- *sample* and *generator* bake the cookiecutter template with :mod:`workspace_hub.scaffold`, as ``ws new``
  does in a terminal;
- *archive* (a zip or tar.gz) is extracted by the dataset importer's child process under the archive rules (zip-slip, links,
  bombs, encryption: :mod:`..datasets.archive`), then laid out by name;
- *git* clones with GitPython at depth 1 over https or http only.  The library's host is not the user's
  workspace: it may reach addresses the user may not, so the host name is resolved here, every address must
  be public (or in :attr:`LibraryService.git_networks`, for a site's own git server), the connection is
  pinned to the checked address (``http.curloptResolve``), and redirects are refused.  Credentials in the
  URL are refused: private repositories are cloned from the workspace's terminal (``ws import git``), where
  the user's keys are.

What comes in lands in the user's own project folder, which the library's quota does not count (no more than
the files made in JupyterLab); :attr:`LibraryService.project_code_max_bytes` bounds each fill, and one fill per
user runs at a time.
"""

from __future__ import annotations

import ipaddress
import keyword
import os
import re
import shutil
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from jupyterhub.slugs import safe_slug

from workspace_hub.projects import Project, user_dir_name
from workspace_hub.scaffold import SAMPLES, ScaffoldError, git_message, new_algorithm_folder, new_sample

from ..datasets import importer
from ..errors import LibraryError
from .code import MAX_FILES

SOURCES = ("sample", "generator", "git", "archive")
FRAMEWORKS = ("sklearn", "pytorch", "keras")
PREFIX = re.compile(r"(?=.{1,40}$)[a-z][a-z0-9]*(-[a-z0-9]+)*")
INTERFACE = re.compile(r"[a-z_][a-z0-9_]{0,39}")
RESERVED = ("health", "docs", "metrics")  # the inference contract's own paths
HOST = re.compile(r"[a-z0-9.-]{1,253}|[0-9a-f:.]{2,45}")  # what urlsplit leaves of a name or an IP literal
# IPv6 forms that carry an IPv4 address (IPv4-compatible, NAT64, 6to4, Teredo) report themselves global
EMBEDS_IPV4 = [ipaddress.ip_network(n) for n in ("::/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16",
                                                   "2001::/32")]
BRANCH = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}")
GIT_TIMEOUT = 300


@dataclass(frozen=True)
class Owner:
    """Who the placed files belong to: the workspace user (the spawner's ``workspace_uid``)."""

    uid: int
    gid: int


def clean_staging(uploads: Path) -> None:
    """What an interrupted fill left (the library stopped in the middle): removed when it starts."""
    for leftover in uploads.glob("code-*"):
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)


def check_new_project(project: Project) -> None:
    """Code comes in only when a project is made: an existing project brings more from its terminal.  A user
    whose folder still has its old name (before :func:`user_dir_name`) lets the hub move it first."""
    users = project.data_root / "users"
    old = safe_slug(project.user)
    if old != user_dir_name(project.user) and (users / old).is_dir() and not project.path.parent.exists():
        raise LibraryError(409, "folder-to-move", "your folder still has the name of an older version: start any "
                           "of your projects once from the Projects page (the hub moves it), then come back", "name")
    if project.record_path.exists() or _has_code(project):
        raise LibraryError(409, "project-exists", f"you already have a project named {project.name!r}: bring more "
                           "code into it from its terminal (ws new, ws import git, or JupyterLab's upload), or "
                           "choose another name", "name")


def _has_code(project: Project) -> bool:
    try:
        fd = _open_code(project)
    except FileNotFoundError:
        return False
    try:
        return bool(os.listdir(fd))
    finally:
        os.close(fd)


def from_sample(staging: Path, sample: str) -> None:
    if sample not in SAMPLES:
        raise LibraryError(400, "invalid-field", f"sample: choose one of {', '.join(SAMPLES)}", "sample")
    _scaffold(lambda: new_sample(sample, output_dir=staging))


def from_generator(staging: Path, prefix: str, interface: str, framework: str) -> None:
    """A train and an api folder wired to one interface, as ``ws new train`` and ``ws new api`` make them.

    The template's hook checks these too, but only after cookiecutter has rendered its context as Jinja,
    which must never see a user's text here, in the library's process: so they are checked first."""
    if not (isinstance(prefix, str) and PREFIX.fullmatch(prefix)):
        raise LibraryError(400, "invalid-field", "prefix: 1-40 lowercase ASCII letters, digits and single hyphens, "
                           "starting with a letter, such as news-classify", "prefix")
    if not (isinstance(interface, str) and INTERFACE.fullmatch(interface)) or keyword.iskeyword(interface) \
            or interface in RESERVED:
        raise LibraryError(400, "invalid-field", "interface: a lowercase English identifier of at most 40 "
                           f"characters, such as classify_text (not a Python keyword nor {', '.join(RESERVED)})",
                           "interface")
    if framework not in FRAMEWORKS:
        raise LibraryError(400, "invalid-field", f"framework: choose one of {', '.join(FRAMEWORKS)}", "framework")
    for kind in ("train", "api"):
        _scaffold(lambda kind=kind: new_algorithm_folder(kind, prefix, interface, framework, staging))


def _scaffold(bake) -> None:
    try:
        bake()
    except ScaffoldError as e:
        raise LibraryError(400, "invalid-field", f"the generator refused this input: {e}") from None


def from_archive(archive: Path, staging: Path, limits) -> None:
    """A zip or tar.gz's files under their own names, extracted in the importer's child process (beside
    *staging*, so that no name in the archive meets the extraction's own folders)."""
    extracted = staging.with_name(staging.name + ".extract")
    try:
        result = importer.run({"code": archive}, extracted, importer.MODEL, limits)
        if "crashed" in result:
            raise LibraryError(400, "import-crashed", result["crashed"], "archive")
        part = result["splits"]["code"]
        if not part["ok"]:
            raise LibraryError(400, part["code"], part["message"], "archive")
        for name, staged, _size, _digest in part["members"]:
            target = staging / name  # names passed the archive rules: relative, no '..', no links out
            target.parent.mkdir(parents=True, exist_ok=True)
            source = extracted / "code" / staged
            if source.stat().st_nlink > 1 or target.exists():
                shutil.copyfile(source, target)  # a link inside the archive: a second name for the same bytes
            else:
                os.link(source, target)
    finally:
        shutil.rmtree(extracted, ignore_errors=True)
    if not any(staging.iterdir()):
        raise LibraryError(400, "empty-archive", "the archive holds no files; zip the code folder itself",
                           "archive")


def check_git_url(url: str) -> tuple[str, int]:
    """The URL's host and port, once it passes the page's rules (https or http, no credentials)."""
    if not isinstance(url, str) or not 1 <= len(url) <= 2000 or url.startswith("-") \
            or not url.isascii() or re.search(r"[\x00-\x20\x7f]", url):
        raise LibraryError(400, "invalid-field", "url: an https:// or http:// repository URL in ASCII, with no "
                           "spaces (an internationalised host name goes in its xn-- form)", "url")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as e:
        raise LibraryError(400, "invalid-field", f"url: {e}", "url") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise LibraryError(400, "git-protocol", "url: the page clones over https:// or http:// only; clone ssh:// "
                           "or git@ URLs from the workspace's terminal (ws import git), where your keys are", "url")
    if parts.username or parts.password:
        raise LibraryError(400, "git-credentials", "url: credentials in the URL are refused (they would be kept "
                           "in the project's git config); clone private repositories from the workspace's "
                           "terminal (ws import git)", "url")
    if not HOST.fullmatch(parts.hostname):
        raise LibraryError(400, "invalid-field", f"url: {parts.hostname!r} is not a host name or an IP address",
                           "url")
    return parts.hostname, port


def resolve_public(host: str, port: int, networks: list[str]) -> str:
    """An address of *host* that is public or in *networks*; refused if any address is neither, since a
    name that resolves to both is how a rebinding attack reaches a private one."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise LibraryError(400, "git-host", f"url: the host {host!r} cannot be resolved ({e})", "url") from None
    allowed = [ipaddress.ip_network(n, strict=False) for n in networks]
    addresses = sorted({info[4][0] for info in found})
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])
        public = address.is_global and not (address.version == 6 and (address.ipv4_mapped or any(
            address in network for network in EMBEDS_IPV4)))
        if not (public or any(address in network for network in allowed)):
            raise LibraryError(400, "git-private-address", f"url: {host} resolves to {address}, an address on this "
                               "site's own network, which the library does not clone from; clone it from the "
                               "workspace's terminal (ws import git), or ask an admin to add its network to "
                               "LibraryService.git_networks", "url")
    return addresses[0]


def from_git(staging: Path, url: str, branch: str | None, networks: list[str], limit: int) -> None:
    """A shallow clone of *url*, bounded in time (:data:`GIT_TIMEOUT`) and, file by file, in size (``prlimit``:
    the pack is one file); its tree is counted before it is checked out, so that a repository of many copies of
    one compressed blob (a git bomb) is refused before it is written out."""
    from git import Git, GitCommandError

    host, port = check_git_url(url)
    if branch and not BRANCH.fullmatch(branch):
        raise LibraryError(400, "invalid-field", "branch: letters, digits, '.', '_', '/' and '-'", "branch")
    address = resolve_public(host, port, networks)
    pinned = f"[{address}]" if ":" in address else address
    config = {"http.curloptResolve": f"{host}:{port}:{pinned}", "http.followRedirects": "false",
              "http.proxy": "", "protocol.allow": "never", "protocol.https.allow": "always",
              "protocol.http.allow": "always", "core.hooksPath": "/dev/null", "credential.helper": ""}
    # the library's own proxy would resolve the name itself, past the check above
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_ASKPASS": "/bin/false", "GIT_CONFIG_COUNT": str(len(config)), "NO_PROXY": "*", "no_proxy": "*",
           **{name: "" for name in ("http_proxy", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy")}}
    for n, (key, value) in enumerate(config.items()):
        env[f"GIT_CONFIG_KEY_{n}"], env[f"GIT_CONFIG_VALUE_{n}"] = key, value
    name = Path(urlsplit(url).path.rstrip("/")).name.removesuffix(".git")
    name = name if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name) else "repository"
    git = Git(str(staging))
    try:
        git.execute(["prlimit", f"--fsize={limit}", "git", "clone", "--depth=1", "--single-branch", "--no-tags",
                     "--no-checkout", *(["--branch", branch] if branch else []), "--", url, name],
                    env=env, kill_after_timeout=GIT_TIMEOUT)
        tree = Git(str(staging / name)).execute(["git", "ls-tree", "-r", "-l", "-z", "HEAD"], env=env,
                                                kill_after_timeout=GIT_TIMEOUT)
    except GitCommandError as e:
        raise LibraryError(400, "git-clone", f"git clone failed: {git_message(e)[:500]}", "url") from None
    entries = [line.split(None, 4) for line in tree.split("\0") if line]
    size = sum(int(fields[3]) for fields in entries if fields[1] == "blob" and fields[3].isdigit())
    if size > limit or len(entries) > MAX_FILES:
        raise LibraryError(413, "too-large", f"the repository holds {len(entries)} files of {size} bytes, over the "
                           f"limit of {MAX_FILES} files and {limit} bytes; keep data and models out of git", "url")
    try:
        Git(str(staging / name)).execute(["prlimit", f"--fsize={limit}", "git", "reset", "--hard", "--quiet"],
                                         env=env, kill_after_timeout=GIT_TIMEOUT)
    except GitCommandError as e:
        raise LibraryError(400, "git-clone", f"git checkout failed: {git_message(e)[:500]}", "url") from None


def place(staging: Path, project: Project, owner: Owner) -> list[str]:
    """Hand *staging*'s entries to the workspace user and move them into the project's empty code folder;
    the project's folders are made as the hub makes them.  Returns the top-level names placed."""
    project.create_dirs(owner.uid, owner.gid)
    for folder, dirs, files in os.walk(staging):
        for name in (*dirs, *files):
            os.lchown(os.path.join(folder, name), owner.uid, owner.gid)
    names = sorted(os.listdir(staging))
    code = _open_code(project)
    try:
        if os.listdir(code):
            raise LibraryError(409, "project-exists", f"the code folder of {project.name!r} is no longer empty: "
                               "bring more code in from its terminal", "name")
        staged = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for name in names:
                try:
                    os.rename(name, name, src_dir_fd=staged, dst_dir_fd=code)
                except OSError:  # the workspace started meanwhile and made a folder of that name
                    raise LibraryError(409, "project-exists", f"{name} appeared in the code folder of "
                                       f"{project.name!r} while its code came in; bring the rest in from its "
                                       "terminal", "name") from None
        finally:
            os.close(staged)
    finally:
        os.close(code)
    return names


def _open_code(project: Project) -> int:
    """A descriptor of the project's code folder, reached from the data root without following a link."""
    fd = os.open(project.data_root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in (*project.relative.split("/"), "code"):
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = next_fd
    except OSError as e:
        os.close(fd)
        if isinstance(e, FileNotFoundError):
            raise
        raise LibraryError(409, "project-exists", f"the folder of {project.name!r} is not a plain folder; choose "
                           "another name", "name") from None
    if not stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise LibraryError(409, "project-exists", "the code folder is not a folder", "name")
    return fd
