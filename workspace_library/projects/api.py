"""The caller's own projects, looked up under their own folder by name only.

``projects/<name>/code.zip`` and ``model.zip`` (or ``.tar.gz``): the project's code or model folder, streamed
(page routes: the browser follows the hub's login on the way, from the Projects page's links).

``projects/new``: the page that makes a project with code in it (manual 2.6.1-2.6.2), and its API:
``POST api/projects/<name>/code`` with ``{"source": "sample" | "generator" | "git", ...}``, or
``POST api/projects/<name>/code/archive`` with a zip or tar.gz as the body, fills a new project's code folder
(:mod:`.sources`); the page then starts the project through the hub's own spawn URL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import uuid
from pathlib import Path

from tornado import web

from workspace_hub.projects import InvalidChoice, Project, check_project_name
from workspace_hub.scaffold import SAMPLES

from .. import rules
from ..base import BaseHandler
from ..errors import LibraryError
from ..pages import PageHandler
from ..streaming import send_archive
from . import sources
from .code import MAX_FILES, code_files, open_beneath

CODE_SOURCE = {
    "type": "object", "additionalProperties": False, "required": ["source"],
    "properties": {
        "source": {"enum": ["sample", "generator", "git"], "description": "archive uploads go to .../code/archive"},
        "sample": {"enum": sorted(SAMPLES)},
        "prefix": {"type": "string", "maxLength": 40},
        "interface": {"type": "string", "maxLength": 40},
        "framework": {"enum": list(sources.FRAMEWORKS)},
        "url": {"type": "string", "maxLength": 2000},
        "branch": {"type": "string", "maxLength": 100},
    },
}
NEEDS = {"sample": ("sample",), "generator": ("prefix", "interface", "framework"), "git": ("url",)}
_filling: set[str] = set()  # users whose new project's code is coming in now: one at a time (checked on the loop)


def own_project(handler: BaseHandler, name: str) -> Project:
    try:
        return Project(Path(handler.service.data_root).resolve(), handler.who.name, check_project_name(name))
    except InvalidChoice as e:
        raise LibraryError(400, "invalid-field", f"project: {e}", "name") from None


class FolderDownloadHandler(BaseHandler):
    SUPPORTED_METHODS = ("GET",)

    @web.authenticated
    async def get(self, name, folder, fmt):
        folder_path = own_project(self, name).path / folder
        files = await self.service.offload(code_files, folder_path)
        await send_archive(self, files, lambda relative: open_beneath(folder_path, relative),
                           f"{name}-{folder}.{fmt}", fmt)


class CodeFilling:
    """One new project's code, coming in: claimed so that two requests never fill one folder."""

    def __init__(self, handler: BaseHandler, name: str):
        self.handler, self.project = handler, own_project(handler, name)
        self.staging = handler.service.imports.root / "uploads" / f"code-{uuid.uuid4().hex}"
        self.claimed = False

    def __enter__(self):
        if self.project.user in _filling:
            raise LibraryError(409, "busy", "code is already coming into another of your new projects; wait for "
                               "it to end", "name")
        _filling.add(self.project.user)
        self.claimed = True
        return self

    def __exit__(self, *exc):
        if self.claimed:
            _filling.discard(self.project.user)
            self.claimed = False

    async def run(self, fill) -> dict:
        """Check the project is new, *fill* (blocking) the staging folder, and place what it holds."""
        service = self.handler.service

        def work():
            sources.check_new_project(self.project)
            self.staging.mkdir(parents=True)
            try:
                fill(self.staging)
                return sources.place(self.staging, self.project, sources.Owner(service.workspace_uid,
                                                                               service.workspace_gid))
            finally:
                shutil.rmtree(self.staging, ignore_errors=True)

        # clones and extractions take minutes at worst: they have threads of their own, never the shared ones
        placed = await asyncio.get_running_loop().run_in_executor(service.code_fills, work)
        return {"project": self.project.name, "folders": placed}


class CodeSourceHandler(BaseHandler):
    SUPPORTED_METHODS = ("POST",)

    async def post(self, name):
        data = rules.check_input(CODE_SOURCE, self.json_body())
        missing = [field for field in NEEDS[data["source"]] if not data.get(field)]
        if missing:
            raise LibraryError(400, "invalid-field", f"{missing[0]}: required for the {data['source']} source",
                               missing[0])
        service = self.service
        if data["source"] == "sample":
            fill = lambda staging: sources.from_sample(staging, data["sample"])  # noqa: E731
        elif data["source"] == "generator":
            fill = lambda staging: sources.from_generator(staging, data["prefix"], data["interface"],  # noqa: E731
                                                          data["framework"])
        else:
            sources.check_git_url(data["url"])  # at once, before anything is claimed
            fill = lambda staging: sources.from_git(staging, data["url"], data.get("branch"),  # noqa: E731
                                                    list(service.git_networks), service.project_code_max_bytes)
        with CodeFilling(self, name) as filling:
            self.send(await filling.run(fill), 201)


@web.stream_request_body
class CodeArchiveHandler(BaseHandler):
    """POST a zip or tar.gz of code as the body (streamed to disk, at most ``project_code_max_bytes``)."""

    SUPPORTED_METHODS = ("POST",)
    file = refusal = filling = None

    def prepare(self):
        try:
            self.who  # noqa: B018 - authenticates the caller before any byte is stored
            limit = self.service.project_code_max_bytes
            length = int(self.request.headers.get("Content-Length") or 0)
            if length > limit:
                raise LibraryError(413, "too-large", f"the archive is {length} bytes; code archives are at most "
                                   f"{limit} bytes: keep data and models out of the code folder", "archive")
            self.filling = CodeFilling(self, self.path_kwargs["name"]).__enter__()
        except LibraryError as e:
            self.refuse_upload(e)
            return
        finally:
            self.release_db()
        self.request.connection.set_max_body_size(limit)
        self.filling.staging.parent.mkdir(parents=True, exist_ok=True)
        self.archive = self.filling.staging.with_suffix(".part")
        self.file = open(self.archive, "wb")

    def data_received(self, chunk):
        if self.file is not None:
            self.file.write(chunk)

    def _discard(self):
        if self.file is not None:
            self.file.close()
            self.file = None
            self.archive.unlink(missing_ok=True)
        if self.filling is not None:
            self.filling.__exit__(None, None, None)

    def on_connection_close(self):  # a dropped or oversized upload: nothing is kept, the name is free again
        self._discard()
        super().on_connection_close()

    def on_finish(self):
        self._discard()
        super().on_finish()

    async def post(self, name):
        if self.refusal is not None:
            raise self.refusal
        self.file.close()
        self.file = None
        limits = dataclasses.replace(self.service.imports.limits, max_bytes=self.service.project_code_max_bytes,
                                     max_files=MAX_FILES)
        try:
            placed = await self.filling.run(lambda staging: sources.from_archive(self.archive, staging, limits))
        finally:
            self.archive.unlink(missing_ok=True)
        self.send(placed, 201)


class NewProjectPage(PageHandler):
    """Code for a new project; its name, env and dataset come from the Projects page, in the query."""

    template = "project_new.html"

    @web.authenticated
    def get(self):
        samples = [{"name": name, "description": sample.description, "env": sample.env}
                   for name, sample in SAMPLES.items()]
        self.finish(self.render_page(self.template, samples=samples, frameworks=list(sources.FRAMEWORKS),
                                     max_bytes=self.service.project_code_max_bytes))


PROJECT = r"(?P<name>[a-z][a-z0-9-]{0,29})"
ROUTES = [
    (rf"projects/{PROJECT}/(?P<folder>code|model)\.(?P<fmt>zip|tar\.gz)", FolderDownloadHandler),
    ("projects/new", NewProjectPage),
    (rf"api/projects/{PROJECT}/code", CodeSourceHandler),
    (rf"api/projects/{PROJECT}/code/archive", CodeArchiveHandler),
]
OPENAPI_SCHEMAS = {"CodeSource": CODE_SOURCE}
