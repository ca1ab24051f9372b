"""The spawn logic of WorkspaceMixin, and how each profile renders it."""

import pytest
from tornado import web

from harness.waiting import free_port
from workspace_hub.spawner import apply_workspace_options, render_options_form


async def test_options_form_offers_envs_and_datasets(spawner_for):
    form = await render_options_form(spawner_for("docker"))
    assert 'value="python"' in form and 'value="flowers"' in form


async def test_gpu_envs_are_hidden_without_a_gpu_runtime(spawner_for):
    assert 'value="pytorch-gpu"' not in await render_options_form(spawner_for("docker", gpu=False))
    assert 'value="pytorch-gpu"' in await render_options_form(spawner_for("docker", gpu=True))


def test_options_from_form_reads_env_and_dataset(spawner_for):
    spawner = spawner_for("docker")
    assert spawner.options_from_form({"env": ["python"], "dataset": [" flowers "]}) == {
        "env": "python", "dataset": "flowers"}


@pytest.mark.parametrize(
    "options, name, message",
    [
        ({"env": "cobol"}, "demo", "Unknown base env 'cobol'"),
        ({"env": "pytorch-gpu"}, "demo", "Unknown base env"),
        ({"env": "python", "dataset": "nope"}, "demo", "not an online dataset you may use"),
        ({"env": "python", "dataset": "../users"}, "demo", "not an online dataset you may use"),
        ({"env": "python"}, "Demo", "Invalid project name"),
        ({"env": "python"}, "", "needs a name"),
        (["env"], "demo", "must be a JSON object"),
    ],
)
async def test_bad_choices_are_http_400_with_the_rule(spawner_for, profile, options, name, message):
    spawner = spawner_for(profile, name=name)
    with pytest.raises(web.HTTPError) as e:
        await apply_workspace_options(spawner, options)
    assert e.value.status_code == 400 and message in e.value.log_message


async def test_a_project_keeps_its_env(spawner_for, catalog_dir):
    await apply_workspace_options(spawner_for("docker"), {"env": "python"})
    with pytest.raises(web.HTTPError, match="already exists with base env 'python'"):
        await apply_workspace_options(spawner_for("docker", gpu=True), {"env": "pytorch-gpu"})


async def test_a_restart_without_options_reuses_the_record(spawner_for):
    await apply_workspace_options(spawner_for("docker"), {"env": "python", "dataset": "flowers"})
    spawner = spawner_for("docker")
    await apply_workspace_options(spawner, {})
    assert (spawner.workspace.env.id, spawner.workspace.dataset.key) == ("python", "flowers")


async def test_admin_limit_overrides_win_over_the_catalog(spawner_for):
    spawner = spawner_for("docker", limit_overrides={"*": {"cpu": 4}, "python": {"mem": "8G"}})
    await apply_workspace_options(spawner, {"env": "python"})
    assert (spawner.mem_limit, spawner.cpu_limit) == (8 * 1024**3, 4.0)


async def test_workspace_env_vars(spawner_for):
    spawner = spawner_for("local")
    await apply_workspace_options(spawner, {"env": "python", "dataset": "flowers"})
    env = spawner.get_env()
    assert (env["WORKSPACE_PROJECT"], env["WORKSPACE_ENV"], env["WORKSPACE_DATASET"]) == (
        "demo", "python", "flowers 1 (dir)")


# Docker ---------------------------------------------------------------------


async def docker_create_kwargs(spawner):
    """The kwargs DockerSpawner sends to the engine's create_container."""
    import docker

    calls = {}

    async def fake_docker(method, *args, **kwargs):
        calls[method] = kwargs
        return {"Id": "x", "Config": {"Cmd": ["jupyterhub-singleuser"]}}

    spawner.docker = fake_docker
    spawner.__dict__["client"] = docker.APIClient(base_url="unix:///nonexistent", version="1.41")
    type(spawner).client = property(lambda self: self.__dict__["client"])
    await spawner.create_object()
    return calls["create_container"]


async def test_docker_create_kwargs(spawner_for, data_root):
    spawner = spawner_for("docker")
    await apply_workspace_options(spawner, {"env": "python", "dataset": "flowers"})
    kwargs = await docker_create_kwargs(spawner)
    host = kwargs["host_config"]
    assert kwargs["image"] == "workspace-hub/python:latest"
    assert kwargs["user"] == "1000:1000" and kwargs["working_dir"] == "/project"
    assert host["NetworkMode"] == "host" and "PortBindings" not in host
    assert not host.get("Privileged") and host["CapDrop"] == ["ALL"]
    assert host["Memory"] == 2 * 1024**3 and host["CpuQuota"] == 150_000
    assert sorted(host["Binds"]) == sorted([
        f"{data_root}/users/alice/demo/code:/project/code:rw",
        f"{data_root}/users/alice/demo/model:/project/model:rw",
        f"{data_root}/users/alice/demo/docker_image:/project/docker_image:rw",
        f"{data_root}/users/alice/demo/.home:/home/jovyan:rw",
        f"{data_root}/help_doc:/project/help_doc:ro",
        f"{data_root}/library/trees/f1:/project/dataset:ro",
    ])
    assert not any("docker.sock" in b for b in host["Binds"])
    assert "DeviceRequests" not in host


async def test_docker_gpu_env_requests_gpus(spawner_for):
    spawner = spawner_for("docker", gpu=True)
    await apply_workspace_options(spawner, {"env": "pytorch-gpu"})
    host = (await docker_create_kwargs(spawner))["host_config"]
    [request] = host["DeviceRequests"]
    assert (request["Count"], request["Capabilities"]) == (-1, [["gpu"]])


async def test_docker_server_listens_on_loopback_only(spawner_for):
    spawner = spawner_for("docker")
    assert spawner.ip == "127.0.0.1"
    spawner.port = 41234
    assert await spawner.get_ip_and_port() == ("127.0.0.1", 41234)


# Local ----------------------------------------------------------------------


async def test_local_profile_uses_the_same_layout(spawner_for, data_root):
    spawner = spawner_for("local")
    await apply_workspace_options(spawner, {"env": "python", "dataset": "flowers"})
    root = data_root / "users/alice/demo"
    assert spawner.notebook_dir == str(root)
    assert (root / "help_doc").resolve() == (data_root / "help_doc").resolve()
    assert (root / "dataset").resolve() == (data_root / "library/trees/f1").resolve()
    assert all((root / d).is_dir() for d in ("code", "model", "docker_image"))


# Kubernetes -----------------------------------------------------------------


async def rendered_pod(spawner) -> dict:
    """The pod manifest exactly as KubeSpawner would send it to the API server."""
    from kubernetes_asyncio.client import ApiClient

    async with ApiClient() as api:
        return api.sanitize_for_serialization(await spawner.get_pod_manifest())


async def test_kubernetes_pod_manifest(spawner_for):
    spawner = spawner_for("kubernetes")
    await apply_workspace_options(spawner, {"env": "python", "dataset": "flowers"})
    pod = await rendered_pod(spawner)
    container = pod["spec"]["containers"][0]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/project/code"] == {"name": "workspace-data", "mountPath": "/project/code",
                                       "subPath": "users/alice/demo/code", "readOnly": False}
    assert mounts["/project/help_doc"]["readOnly"] and mounts["/project/dataset"]["readOnly"]
    assert mounts["/project/dataset"]["subPath"] == "library/trees/f1"
    assert pod["spec"]["volumes"] == [
        {"name": "workspace-data", "persistentVolumeClaim": {"claimName": "workspace-data"}}]
    assert container["image"] == "workspace-hub/python:latest"
    assert container["resources"]["limits"] == {"memory": 2 * 1024**3, "cpu": 1.5}
    assert container["securityContext"]["runAsUser"] == 1000
    assert container["workingDir"] == "/project"
    init = pod["spec"]["initContainers"][0]
    assert init["securityContext"]["runAsUser"] == 1000
    # the init container runs the site's image, not the user's env, and sees only this user's folder
    assert init["image"] == spawner.init_image != container["image"]
    assert init["volumeMounts"] == [{"name": "workspace-data", "mountPath": "/data", "subPath": "users/alice"}]
    assert "/data/demo/code" in init["command"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]


async def test_kubernetes_gpu_env_requests_a_gpu(spawner_for):
    spawner = spawner_for("kubernetes", gpu=True)
    await apply_workspace_options(spawner, {"env": "pytorch-gpu"})
    container = (await rendered_pod(spawner))["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"


async def test_start_returns_as_soon_as_the_server_answers(spawner_for):
    """The hub then finds the server up at its first check, without its backoff."""
    import asyncio
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Event, Thread

    port = free_port()
    answered = Event()

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            answered.set()

        def log_message(self, *args):
            pass

    def serve_later():
        answered.wait(0.5)  # not listening yet: the first polls are refused
        HTTPServer(("127.0.0.1", port), Answer).handle_request()

    spawner = spawner_for("docker", http_timeout=600)

    async def alive():
        return None

    spawner.poll = alive
    Thread(target=serve_later, daemon=True).start()
    await asyncio.wait_for(spawner.wait_until_answering("127.0.0.1", port), timeout=30)
    assert answered.is_set()


async def test_a_server_that_died_is_left_to_the_hub(spawner_for):
    import asyncio

    spawner = spawner_for("docker", http_timeout=600)

    async def exited():
        return 1

    spawner.poll = exited
    # nothing listens on the discard port; it returns once poll() reports the exit, not after 600 s
    await asyncio.wait_for(spawner.wait_until_answering("127.0.0.1", 9), timeout=30)


@pytest.fixture
def library():
    """A stand-in library on loopback: serves ``listed`` for GET api/envs, after ``delay`` seconds."""
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    state = {"listed": [], "delay": 0, "auth": []}

    class Envs(BaseHTTPRequestHandler):
        def do_GET(self):
            state["auth"].append(self.headers.get("Authorization"))
            time.sleep(state["delay"])
            body = json.dumps({"items": state["listed"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Envs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/services/library/"
    yield state
    server.shutdown()


def env_item(name, owner, visibility):
    return {"name": name, "version": "1.0", "owner": owner, "visibility": visibility, "framework": "python",
            "device": "cpu", "description": "", "image": f"envs/k/{name}:1.0"}


async def test_the_form_offers_presets_own_envs_and_public_envs_labelled_with_their_owner(spawner_for, library):
    """The library decides visibility; the form names whose env a public one is, and limits it."""
    library["listed"] = [env_item("theirs", "mallory", "public"), env_item("mine", "alice", "private"),
                         env_item("pytorch-gpu", "workspace-hub", "preset"),
                         env_item("python", "workspace-hub", "preset")]
    spawner = spawner_for("docker", gpu=True, library_url=library["url"], library_token="secret")
    envs = {e.id: e for e in (await spawner.offered_envs()).envs}
    assert library["auth"] == ["token secret"]
    assert envs["python"].image == "workspace-hub/python:latest"  # the catalog's own entry
    assert envs["mine"].display_name == "mine 1.0"
    assert envs["theirs"].display_name == "theirs 1.0, by mallory"
    assert (envs["theirs"].mem_limit, envs["theirs"].cpu_limit) == ("4G", 2.0)
    # a stable order: the catalog's presets in catalog order, then the user's own envs, then others'
    assert list(envs) == ["python", "pytorch-gpu", "mine", "theirs"]
    library["listed"].reverse()
    assert [e.id for e in (await spawner.offered_envs()).envs] == list(envs)


async def test_a_library_that_does_not_answer_in_time_leaves_the_catalog_and_a_visible_notice(spawner_for, library):
    library["delay"], library["listed"] = 2, [env_item("mine", "alice", "private")]
    spawner = spawner_for("docker", library_url=library["url"], library_timeout=0.2)
    form = await render_options_form(spawner)
    assert 'id="ws-notice"' in form and "The library did not answer" in form
    assert 'value="python"' in form and 'value="mine"' not in form


async def test_an_env_that_is_not_built_is_shown_disabled_with_its_build_command(spawner_for):
    spawner = spawner_for("docker", gpu=True, unbuilt=("pytorch-gpu",))
    form = await render_options_form(spawner)
    assert '<option value="pytorch-gpu" disabled>' in form and "ws envs build pytorch-gpu" in form
    with pytest.raises(web.HTTPError) as e:
        await apply_workspace_options(spawner, {"env": "pytorch-gpu"})
    assert e.value.status_code == 400 and "not built on this hub" in e.value.log_message
    assert "ws envs build pytorch-gpu" in e.value.log_message


async def test_the_docker_spawner_asks_the_engine_whether_an_image_is_built(data_root, catalog_dir):
    """The real check (the tests above stub it): inspect_image through DockerSpawner's thread pool."""
    from docker.errors import ImageNotFound

    from workspace_hub.catalog import load_catalog
    from workspace_hub.spawner import DockerWorkspaceSpawner

    asked = []

    async def docker(method, *args):
        asked.append((method, *args))
        if args[0] == "workspace-hub/pytorch-gpu:latest":
            raise ImageNotFound("no such image")
        return {"Config": {"Labels": {"ai.workspace-hub.framework-version": "3.11.2"}}}

    spawner = DockerWorkspaceSpawner.__new__(DockerWorkspaceSpawner)
    spawner.docker = docker
    spawner.data_root = str(data_root)
    catalog = load_catalog(catalog_dir)
    assert await DockerWorkspaceSpawner.env_version(spawner, catalog["python"]) == "python 3.11.2"
    assert await DockerWorkspaceSpawner.env_version(spawner, catalog["pytorch-gpu"]) is None
    # once `ws envs build` pinned an image ID, that ID is what starts, so that is what must exist
    (data_root / "base-images" / "python").mkdir(parents=True)
    (data_root / "base-images" / "python" / "current").symlink_to("ab" * 32)
    await DockerWorkspaceSpawner.env_version(spawner, catalog["python"])
    assert asked == [("inspect_image", "workspace-hub/python:latest"),
                     ("inspect_image", "workspace-hub/pytorch-gpu:latest"),
                     ("inspect_image", "sha256:" + "ab" * 32)]


@pytest.mark.parametrize("name, version, shown", [
    ("PyTorch (CPU)", "torch 2.13.0", "PyTorch (CPU), torch 2.13.0"),
    ("Python 3.11", "python 3.11.2", "Python 3.11"),  # the name already says it
    ("mine 1.0", "", "mine 1.0"),
])
def test_the_form_names_an_env_with_its_framework_version_once(name, version, shown):
    from workspace_hub.spawner import with_version

    assert with_version(name, version) == shown
