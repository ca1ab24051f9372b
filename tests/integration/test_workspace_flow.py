"""The developer's path through a real workspace: sample -> train -> serve -> `make build` -> image.

Everything inside runs in a workspace spawned by the hub (uid 1000, no docker
socket); the built tars are then loaded and run on the host engine, as the
library would.
"""

import hashlib
import json
import subprocess
import tarfile
import urllib.request

import pytest

from harness.waiting import free_port, status_of, wait_until

pytestmark = pytest.mark.docker

USER = "dana"
SAMPLES = {"text-classify-bayes": "python", "image-classify-torch": "pytorch", "image-classify-keras": "keras"}


def sh(container, script: str) -> str:
    code, out = container.exec_run(["bash", "-lc", script])
    assert code == 0, out.decode()[-3000:]
    return out.decode()


def wait_for(url: str, timeout: float = 60) -> None:
    """Until *url* answers 200 (a predict server answers 503 while its model loads)."""
    wait_until(lambda: status_of(url) == 200, timeout, 0.3, f"{url} to answer 200")


def predict(port: int, interface: dict) -> dict:
    body = json.dumps({p["name"]: p["test_value"] for p in interface["params"]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/{interface['name']}", data=body,
                                     headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


@pytest.fixture(scope="module")
def workspaces(hub):
    """dana, with one running project per sample env."""
    hub.api("POST", f"/users/{USER}")
    for env in sorted(set(SAMPLES.values())):
        hub.start_project(USER, f"dev-{env}", env=env)
    return hub


@pytest.mark.parametrize("sample", SAMPLES)
def test_a_sample_trains_and_serves_in_its_workspace(workspaces, container_of, sample):
    container = container_of(USER, f"dev-{SAMPLES[sample]}")
    port = free_port()
    sh(container, f"cd /project/code && ws new sample {sample} && cd {sample}-train-demo && EPOCHS=3 python src/train.py")
    sh(container, f"cd /project/code/{sample}-api-demo && (PORT={port} HOST=127.0.0.1 nohup python src/api.py "
                  "> /tmp/api.log 2>&1 &)")
    wait_for(f"http://127.0.0.1:{port}/health")
    algorithm = json.loads(sh(container, f"python -c 'import yaml, json; print(json.dumps(yaml.safe_load(open("
                                         f"\"/project/code/{sample}-api-demo/algorithm.yaml\"))))'"))
    answer = predict(port, algorithm["interface"])
    assert answer["label"] and 0 < answer["probability"] <= 1
    if sample == "text-classify-bayes":
        assert answer["label"] == "sports"  # 足球 is football
    model_dir = workspaces.data_root / "users" / USER / f"dev-{SAMPLES[sample]}" / "model"
    assert (model_dir / "metrics.json").is_file()


@pytest.fixture(scope="module")
def built(workspaces, container_of):
    """The bayes train and api projects packed with `make build_cpu` / `make build` in the workspace."""
    container = container_of(USER, "dev-python")
    sh(container, "test -d /project/code/text-classify-bayes-train-demo || "
                  "(cd /project/code && ws new sample text-classify-bayes)")
    sh(container, "cd /project/code/text-classify-bayes-train-demo && make build_cpu")
    sh(container, "cd /project/code/text-classify-bayes-api-demo && make build")
    images = workspaces.data_root / "users" / USER / "dev-python" / "docker_image"
    return container, images / "train-text-classify-bayes-cpu.tar", images / "predict-text-classify-bayes-cpu.tar"


def load(tar) -> str:
    out = subprocess.run(["docker", "load", "-i", str(tar)], check=True, capture_output=True, text=True).stdout
    return out.strip().rsplit(" ", 1)[-1]


def test_the_train_image_trains_when_loaded_into_docker(built, tmp_path):
    _, train_tar, _ = built
    assert train_tar.stat().st_uid == 1000
    image = load(train_tar)
    model = tmp_path / "model"
    model.mkdir(mode=0o777)
    model.chmod(0o777)
    for label, text in (("sports", "足球比赛\n篮球比赛\n"), ("finance", "股票上涨\n利率下调\n")):
        (tmp_path / "dataset" / label).mkdir(parents=True)
        (tmp_path / "dataset" / label / "a.txt").write_text(text)
    r = subprocess.run(["docker", "run", "--rm", "--network", "none", "-e", "EPOCHS=1",
                        "-v", f"{tmp_path / 'dataset'}:/project/dataset:ro", "-v", f"{model}:/project/model", image],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (model / "model.pkl").is_file() and (model / "metrics.json").is_file()


def test_the_predict_image_answers_its_test_value(built, workspaces):
    _, _, predict_tar = built
    image = load(predict_tar)
    port = free_port()
    model = workspaces.data_root / "users" / USER / "dev-python" / "model"
    container = subprocess.run(["docker", "run", "-d", "--rm", "--network", "host", "-e", f"PORT={port}",
                                "-e", "HOST=127.0.0.1", "-v", f"{model}:/project/model:ro", image],
                               check=True, capture_output=True, text=True).stdout.strip()
    try:
        wait_for(f"http://127.0.0.1:{port}/health")
        config = json.loads(subprocess.run(["docker", "inspect", image], capture_output=True, text=True).stdout)[0]
        interface = json.loads(config["Config"]["Labels"]["ai.platform.interface"])
        assert predict(port, interface)["label"] == "sports"
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)


def test_skopeo_agrees_with_our_manifest(built):
    _, train_tar, _ = built
    raw = json.loads(subprocess.run(["skopeo", "inspect", "--raw", f"docker-archive:{train_tar}"],
                                    check=True, capture_output=True, text=True).stdout)
    config = json.loads(subprocess.run(["skopeo", "inspect", "--config", f"docker-archive:{train_tar}"],
                                       check=True, capture_output=True, text=True).stdout)
    with tarfile.open(train_tar) as tar:
        ours = json.load(tar.extractfile("manifest.json"))[0]
        our_config = json.load(tar.extractfile(ours["Config"]))
    assert raw["config"]["digest"] == "sha256:" + ours["Config"].removesuffix(".json")
    assert config["rootfs"]["diff_ids"] == our_config["rootfs"]["diff_ids"]
    assert [layer["digest"] for layer in raw["layers"]] == our_config["rootfs"]["diff_ids"]


def test_rebuilds_are_reproducible_and_touch_only_the_code_layer(built):
    container, train_tar, _ = built
    digest = hashlib.sha256(train_tar.read_bytes()).hexdigest()
    sh(container, "cd /project/code/text-classify-bayes-train-demo && make build")
    assert hashlib.sha256(train_tar.read_bytes()).hexdigest() == digest

    def diff_ids():
        with tarfile.open(train_tar) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))[0]
            return json.load(tar.extractfile(manifest["Config"]))["rootfs"]["diff_ids"]

    before = diff_ids()
    sh(container, "cd /project/code/text-classify-bayes-train-demo && echo '# changed' >> src/train.py && make build")
    after = diff_ids()
    assert before[:-1] == after[:-1] and before[-1] != after[-1]
