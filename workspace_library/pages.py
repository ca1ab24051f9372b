"""The library's web pages: server-rendered shells in the hub's look, filled from the REST API.

Each page extends ``templates/base.html``, which uses the hub's own stylesheet
and logo (``/hub/static``) and its navigation, so the library reads as part of
the hub.  ``static/library.js`` calls the API with the hub's XSRF token.
"""

from __future__ import annotations

import os
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from tornado import web

from workspace_hub.algorithm import ANNOTATIONS, PURPOSE_TASKS
from workspace_hub.contract import DATASET_FORMATS, RUN_VARIABLES

from . import access
from .base import BaseHandler
from .errors import LibraryError
from .models import Algorithm, BaseEnv, Dataset, Model, Run, Service


TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")


def templates() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())


class PageHandler(BaseHandler):
    """One page; an item's page (``kind`` set) is shown only to those who may see the item: anyone else gets
    the API's refusal alone, as a page, with none of the item's actions."""

    template = "algorithms.html"
    kind = None  # the model of the item whose id is in the path
    change = False  # a page that changes the item (its edit page): for those who may change it only

    @web.authenticated
    def get(self, **kwargs):
        if self.kind is not None:
            item = access.get_visible(self.db, self.kind, int(kwargs["item_id"]), self.who)
            if self.change:
                access.require_change(item, self.who)
            self.release_db()
        self.finish(self.render_page(self.template, **kwargs))

    def render_page(self, template: str, error: LibraryError | None = None, **kwargs) -> str:
        who = self.who
        prefix = self.settings["service_prefix"]
        page = {"prefix": prefix, "xsrf": self.xsrf_token.decode() if isinstance(self.xsrf_token, bytes)
                else self.xsrf_token, "user": who.name, "admin": who.admin,
                "view": template.removesuffix(".html"), "run_variables": RUN_VARIABLES, "purpose_tasks": PURPOSE_TASKS,
                **kwargs}
        hub = os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/hub/"
        return self.settings["templates"].get_template(template).render(
            prefix=prefix, hub=hub, user=who.name, admin=who.admin, page=page, formats=DATASET_FORMATS,
            purposes=list(PURPOSE_TASKS), annotations=ANNOTATIONS, gpu=self.service.gpu, error=error, **kwargs)

    def write_error(self, status_code, **kwargs):
        """A page's refusal is a page (the message alone), never the API's JSON."""
        error = kwargs.get("exc_info", (None, None))[1]
        if not isinstance(error, LibraryError) or not self.current_user:
            return super().write_error(status_code, **kwargs)
        self.set_status(error.status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(self.render_page("error.html", error=error))


def page(template: str, kind=None, change: bool = False) -> type[PageHandler]:
    return type(f"Page_{template.split('.')[0]}", (PageHandler,), {"template": template, "kind": kind,
                                                                   "change": change})


ROUTES = [
    ("publish", page("publish.html")),
    (r"algorithms/(?P<item_id>\d{1,9})", page("algorithm.html", Algorithm)),
    (r"algorithms/(?P<item_id>\d{1,9})/edit", page("edit.html", Algorithm, change=True)),
    ("datasets", page("datasets.html")),
    ("datasets/new", page("dataset_new.html")),
    (r"datasets/(?P<item_id>\d{1,9})", page("dataset.html", Dataset)),
    ("runs", page("runs.html")),
    ("runs/new", page("run_new.html")),
    (r"runs/(?P<item_id>\d{1,9})", page("run.html", Run)),
    ("models", page("models.html")),
    (r"models/(?P<item_id>\d{1,9})", page("model.html", Model)),
    ("services", page("services.html")),
    ("services/new", page("service_new.html")),
    (r"services/(?P<item_id>\d{1,9})", page("service.html", Service)),
    ("envs", page("envs.html")),
    ("envs/new", page("env_new.html")),
    (r"envs/(?P<item_id>\d{1,9})", page("env.html", BaseEnv)),
]
