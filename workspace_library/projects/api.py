"""``projects/<name>/code.zip`` (or ``.tar.gz``): the caller's own project's code folder, streamed.

A page route (the browser follows the hub's login on the way), for the Projects page's download link; the
project is looked up under the caller's own folder, by name only.
"""

from __future__ import annotations

from pathlib import Path

from tornado import web

from workspace_hub.projects import InvalidChoice, Project, check_project_name

from ..base import BaseHandler
from ..errors import LibraryError
from ..streaming import send_archive
from .code import code_files, open_beneath


class CodeDownloadHandler(BaseHandler):
    SUPPORTED_METHODS = ("GET",)

    @web.authenticated
    async def get(self, name, fmt):
        who = self.who
        try:
            project = Project(Path(self.service.data_root).resolve(), who.name, check_project_name(name))
        except InvalidChoice as e:
            raise LibraryError(400, "invalid-field", f"project: {e}", "project") from None
        code = project.path / "code"
        files = await self.service.offload(code_files, code)
        await send_archive(self, files, lambda relative: open_beneath(code, relative), f"{name}-code.{fmt}", fmt)


ROUTES = [(r"projects/(?P<name>[a-z][a-z0-9-]{0,29})/code\.(?P<fmt>zip|tar\.gz)", CodeDownloadHandler)]
OPENAPI_SCHEMAS: dict = {}
