"""The hub config: profiles, embedded defaults, and documented settings."""


import pytest
from traitlets.config import Config

from workspace_hub import spawner
from workspace_hub.auth import WorkspaceAuthenticator
from workspace_hub.hubconfig import PROFILES, configure


def configured(tmp_path, **environ) -> Config:
    c = Config()
    configure(c, {"WSHUB_DATA_ROOT": str(tmp_path / "data"), **environ})
    return c


@pytest.mark.parametrize("profile, spawner_class", sorted(PROFILES.items()))
def test_profiles_select_a_spawner(tmp_path, profile, spawner_class):
    c = configured(tmp_path, WSHUB_PROFILE=profile)
    assert c.JupyterHub.spawner_class == spawner_class


def test_docker_is_the_default_profile(tmp_path):
    assert configured(tmp_path).JupyterHub.spawner_class.endswith("DockerWorkspaceSpawner")


def test_an_unknown_profile_names_the_choices(tmp_path):
    with pytest.raises(SystemExit, match="docker, local, kubernetes"):
        configured(tmp_path, WSHUB_PROFILE="swarm")


def test_embedded_defaults(tmp_path):
    c = configured(tmp_path, WSHUB_PORT="9000")
    data = tmp_path / "data"
    assert c.JupyterHub.bind_url == "http://127.0.0.1:9000"
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:9001"
    assert c.JupyterHub.db_url == f"sqlite:///{data}/jupyterhub.sqlite"
    assert c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.allow_named_servers is True
    assert (data / "help_doc" / "README.md").is_file()
    assert [s["name"] for s in c.JupyterHub.services] == ["idle-culler", "library"]


def test_the_library_runs_as_a_hub_service_that_every_user_and_workspace_may_use(tmp_path):
    c = configured(tmp_path, WSHUB_PORT="9000")
    [publish] = [s for s in c.JupyterHub.services if s["name"] == "library"]
    assert publish["url"] == "http://127.0.0.1:9002" and publish["display"] is True
    assert publish["command"][1:] == ["-m", "workspace_library"]
    assert c.WorkspaceMixin.library_url == "http://127.0.0.1:9002/services/library/"
    assert c.WorkspaceMixin.library_token == publish["api_token"] == configured(tmp_path).WorkspaceMixin.library_token
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert "access:services!service=library" in roles["user"]["scopes"]
    assert "access:services!service=library" in c.Spawner.server_token_scopes
    assert c.Spawner.environment["WSHUB_LIBRARY_URL"] == c.WorkspaceMixin.library_url


def test_kubernetes_leaves_networking_and_the_database_to_zero_to_jupyterhub(tmp_path):
    c = configured(tmp_path, WSHUB_PROFILE="kubernetes")
    assert "bind_url" not in c.JupyterHub and "db_url" not in c.JupyterHub
    assert c.JupyterHub.spawner_class.endswith("KubeWorkspaceSpawner")


def test_on_kubernetes_user_pods_reach_the_library_through_the_hub_service(tmp_path):
    c = configured(tmp_path, WSHUB_PROFILE="kubernetes")
    [publish] = [s for s in c.JupyterHub.services if s["name"] == "library"]
    assert publish["url"] == "http://hub:8002" and publish["environment"]["WSHUB_LIBRARY_BIND"] == "0.0.0.0:8002"
    assert c.WorkspaceMixin.library_url == c.Spawner.environment["WSHUB_LIBRARY_URL"] == "http://hub:8002/services/library/"


def test_postgres_by_url(tmp_path):
    url = "postgresql+psycopg2://hub@127.0.0.1/hub"
    assert configured(tmp_path, WSHUB_DB_URL=url).JupyterHub.db_url == url


def test_the_admin_service_exists_only_with_a_token(tmp_path):
    c = configured(tmp_path, WSHUB_SERVICE_TOKEN="secret")
    assert {"name": "ws-admin", "api_token": "secret"} in c.JupyterHub.services


CONFIGURABLES = [spawner.WorkspaceMixin, spawner.KubeWorkspaceSpawner, WorkspaceAuthenticator]


@pytest.mark.parametrize("cls", CONFIGURABLES, ids=lambda c: c.__name__)
def test_every_setting_is_documented(cls):
    own = {name: t for name, t in cls.class_traits(config=True).items() if name in vars(cls)}
    assert own, f"{cls.__name__} declares no settings"
    assert [name for name, t in own.items() if not (t.help or "").strip()] == []


def test_workspace_settings_reach_every_spawner_through_config():
    from traitlets.config import Config

    c = Config()
    c.WorkspaceMixin.data_root = "/srv/workspaces"
    c.WorkspaceMixin.limit_overrides = {"*": {"mem": "8G"}}
    for cls in (spawner.DockerWorkspaceSpawner, spawner.LocalWorkspaceSpawner):
        configured_spawner = cls(config=c)
        assert configured_spawner.data_root == "/srv/workspaces"
        assert configured_spawner.limit_overrides == {"*": {"mem": "8G"}}


def test_every_environment_variable_the_code_reads_is_in_the_table():
    """One table (hubconfig's docstring) documents every WSHUB_* variable; grep the code against it."""
    import re

    from workspace_hub import hubconfig
    from workspace_hub.catalog import REPO_ROOT

    documented = set(re.findall(r"``(WSHUB_[A-Z_]+)``", hubconfig.__doc__))
    used = set()
    for folder in ("workspace_hub", "workspace_library", "scripts", "hub_config", "harness", "tests", ".ci",
                   "base-envs"):
        for path in (REPO_ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in ("", ".py", ".sh", ".yaml") and "__pycache__" not in path.parts:
                used |= set(re.findall(r"\bWSHUB_[A-Z_]*[A-Z]\b", path.read_text(errors="replace")))
    assert used - documented == set()
    assert documented - used == set(), "the table lists variables nothing reads"


def test_a_hub_started_with_interrupts_ignored_takes_them_back(tmp_path):
    """`cmd &` in a non-interactive shell starts the hub with SIGINT ignored; its services would inherit that
    and ignore the SIGINT JupyterHub stops them with (every stop then waited out its timeouts)."""
    import signal

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        configured(tmp_path)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
