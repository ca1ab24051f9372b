"""The local profile: the same projects as local processes, no Docker (laptops, fast checks)."""

import requests

from harness.hubprocess import HubProcess

from .conftest import ARTIFACTS


def test_a_project_runs_as_a_local_process_with_the_same_layout(tmp_path):
    data_root = tmp_path / "data"
    data_root.mkdir()
    hub = HubProcess(data_root, port=18600, log_path=ARTIFACTS / "hub-local.log", env={"WSHUB_PROFILE": "local"})
    hub.start()
    try:
        hub.api("POST", "/users/frank")
        hub.start_project("frank", "laptop", env="python", dataset=hub.dataset_key("digits"))
        token = hub.user_token("frank")
        listing = requests.get(f"{hub.url}/user/frank/laptop/api/contents/",
                               headers={"Authorization": f"token {token}"}, timeout=10).json()
        assert {"code", "model", "docker_image", "dataset", "help_doc"} <= {i["name"] for i in listing["content"]}
        r = requests.get(f"{hub.url}/user/frank/laptop/api/contents/help_doc/README.md",
                         headers={"Authorization": f"token {token}"}, timeout=10)
        assert "handbook" in r.json()["content"]
        hub.stop_project("frank", "laptop")
    finally:
        hub.stop()
