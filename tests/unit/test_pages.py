"""Every page without an item renders for a signed-in user: a page is HTML, never a 500."""

import pytest
import requests

from workspace_library import pages
from workspace_library.algorithms import api as algorithm_api
from workspace_library.projects import api as project_api

PLAIN = sorted({path for path, _ in (*pages.ROUTES, *algorithm_api.ROUTES, *project_api.ROUTES)
                if not path.startswith("api/") and "(" not in path})


@pytest.mark.parametrize("path", PLAIN)
def test_a_page_renders(library, path):
    _, base = library
    answer = requests.get(f"{base}{path}", params={"name": "demo", "env": "python", "source": "git"},
                          headers={"Authorization": "token owner-token"}, timeout=30)
    assert answer.status_code == 200, answer.text[-500:]
    assert answer.headers["Content-Type"].startswith("text/html") and "</html>" in answer.text
