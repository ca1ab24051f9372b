"""Schemathesis drives the service from its own OpenAPI document: no input may cause a server error.

Coverage, fuzzing and stateful phases run as a signed-in user against the real
handlers and database (SQLite, and Postgres in CI).  The pull endpoints are
left out: every generated reference would make the engine try a registry; so is a new project's code, whose
generated git URLs would be cloned.
"""

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.library import running_service



@pytest.fixture
def quiet_access_log():
    logging.getLogger("tornado.access").disabled = True
    yield
    logging.getLogger("tornado.access").disabled = False


def test_no_generated_request_causes_a_server_error(db_url, tmp_path, quiet_access_log):  # noqa: F811
    with running_service(tmp_path / "data", db_url, smoke_by_default=False) as (service, base):
        service.validations._load = lambda path, tag, loaded=False: tag
        schemathesis = Path(sys.executable).with_name("schemathesis")
        r = subprocess.run([str(schemathesis), "run", f"{base}api/openapi.json", "--header",
                            "Authorization: token owner-token", "--checks", "not_a_server_error",
                            "--max-examples", "25", "--exclude-path-regex", "/(pull|code)$", "--seed", "1"],
                           capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-5000:]
    tested = re.search(r"Tested: (\d+)", r.stdout)
    assert tested and int(tested.group(1)) >= 50 and " passed" in r.stdout, r.stdout[-3000:]  # of 58 operations
