"""Clean stops: `ws up` takes its hub down with it, and the hub's services exit at once when told to.

A stop that leaves an orphaned hub makes the next `ws up` say "a hub already answers"; a service
that ignores SIGTERM makes every hub stop wait for the hub's kill timeouts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.hubprocess import HubProcess
from harness.waiting import answers, status_of, wait_until

from .conftest import ARTIFACTS

pytestmark = pytest.mark.docker


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def children(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def test_sigterm_to_ws_up_stops_the_hub_and_ws_up_exits(tmp_path):
    port = 18900
    env = {**os.environ, "WSHUB_ADMIN_PASSWORD": "admin-password-1", "WSHUB_HUB_PORT": str(port + 81)}
    log = open(ARTIFACTS / "ws-up.log", "wb")
    up = subprocess.Popen([sys.executable, "-m", "workspace_hub.cli", "up", "--profile", "local", "--port", str(port),
                           "--data-root", str(tmp_path / "data")], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: status_of(f"http://127.0.0.1:{port}/hub/api/") == 200 or up.poll() is not None, 90, 0.2,
                   "the hub that ws up started")
        assert up.poll() is None, (ARTIFACTS / "ws-up.log").read_text()[-2000:]
        [hub] = children(up.pid)
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0  # hang guard: ws up waits for its hub, then exits
        assert not alive(hub), "the hub was left running without ws up"
        assert not answers(f"http://127.0.0.1:{port}/hub/api/")
    finally:
        if up.poll() is None:
            up.kill()


def test_the_library_exits_on_sigterm_and_the_hub_starts_it_again(engine, tmp_path):
    hub = HubProcess(tmp_path / "data", port=18800, log_path=ARTIFACTS / "hub-stops.log")
    (tmp_path / "data").mkdir()
    hub.start()
    try:
        pid = hub.service_pid()
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not alive(pid), 10, 0.05, "the library to exit on SIGTERM")  # a hang guard, not a timing
        wait_until(lambda: hub.service_pid() not in (None, pid), 60, 0.2, "the hub to start the library again")
        wait_until(lambda: status_of(f"{hub.url}/services/library/api/openapi.json") == 200, 60, 0.2, "the library")
    finally:
        hub.stop()
    assert hub.service_pid() is None, "the library outlived its hub"
