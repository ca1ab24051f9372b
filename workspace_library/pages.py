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

from workspace_hub.algorithm import SCHEMA
from workspace_hub.contract import DATASET_FORMATS, RUN_VARIABLES

from .base import BaseHandler

PURPOSES = SCHEMA["properties"]["purpose"]["properties"]["first"]["enum"]

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")


def templates() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())


class PageHandler(BaseHandler):
    template = "algorithms.html"

    @web.authenticated
    def get(self, **kwargs):
        who = self.who
        prefix = self.settings["service_prefix"]
        page = {"prefix": prefix, "xsrf": self.xsrf_token.decode() if isinstance(self.xsrf_token, bytes)
                else self.xsrf_token, "user": who.name, "admin": who.admin,
                "view": self.template.removesuffix(".html"), "run_variables": RUN_VARIABLES, **kwargs}
        hub = os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/hub/"
        html = self.settings["templates"].get_template(self.template).render(
            prefix=prefix, hub=hub, user=who.name, admin=who.admin, page=page, formats=DATASET_FORMATS,
            purposes=PURPOSES, gpu=self.service.gpu, **kwargs)
        self.finish(html)


def page(template: str) -> type[PageHandler]:
    return type(f"Page_{template.split('.')[0]}", (PageHandler,), {"template": template})


ROUTES = [
    ("", page("algorithms.html")),
    ("publish", page("publish.html")),
    (r"algorithms/(?P<item_id>\d{1,9})", page("algorithm.html")),
    (r"algorithms/(?P<item_id>\d{1,9})/edit", page("edit.html")),
    ("datasets", page("datasets.html")),
    ("datasets/new", page("dataset_new.html")),
    (r"datasets/(?P<item_id>\d{1,9})", page("dataset.html")),
    ("runs", page("runs.html")),
    ("runs/new", page("run_new.html")),
    (r"runs/(?P<item_id>\d{1,9})", page("run.html")),
    ("models", page("models.html")),
    (r"models/(?P<item_id>\d{1,9})", page("model.html")),
    ("services", page("services.html")),
    (r"services/(?P<item_id>\d{1,9})", page("service.html")),
    ("envs", page("envs.html")),
    ("envs/new", page("env_new.html")),
    (r"envs/(?P<item_id>\d{1,9})", page("env.html")),
]
