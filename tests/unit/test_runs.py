"""Training runs without an engine: hyperparameter rules, metric lines, the Kubernetes Job, the state mapping,
and the authorization matrix of the run endpoints."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from workspace_hub.executor import ReplicaSpec
from workspace_hub.executor.docker import container_args
from workspace_hub.executor import decide
from workspace_hub.executor.kubernetes import Site, deployment, job, job_end, job_name, service
from workspace_library.models import Algorithm, Dataset, Image, ImageStatus, Run, RunStatus, Status, Visibility
from workspace_library.errors import LibraryError
from workspace_library.runs.logs import parse_metric
from workspace_library.runs.queue import Runs
from workspace_library.runs.rules import check_hyperparameters

from .test_library_api import EXPECTED, ROLES, allowed

GOLDEN = Path(__file__).with_name("golden")
ENV_VARS = {"EPOCHS": {"type": "Integer", "default": 5, "range": [1, 100]},
            "LEARNING_RATE": {"type": "Float", "default": 0.01, "range": [0, 1]},
            "OPTIMIZER": {"type": "String", "default": "adam", "choices": ["adam", "sgd"]},
            "AUGMENT": {"type": "Boolean", "default": False},
            "TOKEN": {"type": "String", "default": "", "required": True},
            "TRAIN_RATIO": {"type": "Float", "default": 0.8}}


def test_hyperparameters_are_filled_from_defaults_and_passed_as_text():
    assert check_hyperparameters(ENV_VARS, {"TOKEN": "x", "EPOCHS": 3, "AUGMENT": True}) == {
        "AUGMENT": "true", "EPOCHS": "3", "LEARNING_RATE": "0.01", "OPTIMIZER": "adam", "TOKEN": "x"}


@pytest.mark.parametrize("given, field, words", [
    ({}, "TOKEN", "is required"),
    ({"TOKEN": "x", "EPOCHS": 0}, "EPOCHS", "between 1 and 100"),
    ({"TOKEN": "x", "EPOCHS": 2.5}, "EPOCHS", "whole number"),
    ({"TOKEN": "x", "EPOCHS": True}, "EPOCHS", "whole number"),
    ({"TOKEN": "x", "LEARNING_RATE": "fast"}, "LEARNING_RATE", "a number"),
    ({"TOKEN": "x", "OPTIMIZER": "rmsprop"}, "OPTIMIZER", "one of adam, sgd"),
    ({"TOKEN": "x", "AUGMENT": "yes"}, "AUGMENT", "true or false"),
    ({"TOKEN": "x", "PATH": "/etc"}, "PATH", "not a hyperparameter"),
    ({"TOKEN": "x", "TRAIN_RATIO": 0.5}, "TRAIN_RATIO", "set by the run"),
])
def test_a_bad_hyperparameter_is_refused_with_its_name(given, field, words):
    with pytest.raises(LibraryError) as e:
        check_hyperparameters(ENV_VARS, given)
    assert e.value.status == 400 and e.value.field == f"hyperparameters.{field}" and words in e.value.message


@pytest.mark.parametrize("line, values", [
    ("metric: epoch=1 loss=0.4213 accuracy=0.88", {"epoch": 1, "loss": 0.4213, "accuracy": 0.88}),
    ("metric:  step=10 loss=1e-3", {"step": 10, "loss": 0.001}),
    ("metric: loss=nan", None),
    ("metric: epoch=1 loss=", None),
    ("epoch 1 loss 0.4", None),
    ("the metric: loss=0.4", None),
])
def test_metric_lines(line, values):
    assert parse_metric(line) == values


def run_row(**overrides) -> Run:
    fields = dict(id=7, key="k" * 32, name="news", owner="olive", image="algorithms/abc/bayes:1.0-train",
                  dataset_manifests={"train": "a" * 64}, hyperparameters={"EPOCHS": "5"},
                  resources={"device": "cpu", "mem_gb": 3, "cpus": 1.5}, max_runtime=600, train_ratio=0.9, seed=42)
    fields.update(overrides)
    return Run(**fields)


def render(tmp_path, run: Run) -> dict:
    spec = Runs(None, tmp_path / "library" / "runs", tmp_path, executor=None).spec(run)
    return job(Site("workspaces", "workspace-hub-data", tmp_path, owner="library-1234"), spec, job_name(spec))


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_a_run_renders_a_job_that_kubernetes_accepts(tmp_path, device):
    job = render(tmp_path, run_row(resources={"device": device, "mem_gb": 3, "cpus": 1.5}))
    kubernetes_validate.validate(job, "1.30", strict=True)
    expected = yaml.safe_load((GOLDEN / f"run-job-{device}.yaml").read_text())
    assert job == expected


def test_the_job_keeps_the_sandbox(tmp_path):
    job = render(tmp_path, run_row())
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert job["spec"]["activeDeadlineSeconds"] == 600 and job["spec"]["backoffLimit"] == 0
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"] == {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                                            "capabilities": {"drop": ["ALL"]}}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/project/dataset"] == {"name": "data", "mountPath": "/project/dataset",
                                          "subPath": "library/trees/" + "a" * 64, "readOnly": True}
    assert mounts["/project/model"]["subPath"] == f"library/runs/{'k' * 32}/model"
    assert not mounts["/project/model"]["readOnly"]
    assert {"name": "SEED", "value": "42"} in container["env"] and {"name": "TRAIN_RATIO", "value": "0.9"} in container["env"]


def test_a_run_on_an_independent_test_set_names_it_and_sets_no_ratio(tmp_path):
    """Issue 25, bug 1: on a dataset with 120 train and 30 test files a run logged "96 training and 24 test
    examples": the test set was mounted but nothing told the algorithm, so its default ratio split the train
    set.  The run names the test set in TEST_DATASET_DIR, and sets no TRAIN_RATIO."""
    run = run_row(dataset_manifests={"train": "a" * 64, "test": "b" * 64}, train_ratio=None)
    spec = Runs(None, tmp_path / "library" / "runs", tmp_path, executor=None).spec(run)
    assert spec.environment["TEST_DATASET_DIR"] == "/project/dataset_test"
    assert "TRAIN_RATIO" not in spec.environment
    assert {m.target: m.host.name for m in spec.mounts}["/project/dataset_test"] == "b" * 64
    alone = Runs(None, tmp_path / "library" / "runs", tmp_path, executor=None).spec(run_row())
    assert "TEST_DATASET_DIR" not in alone.environment and alone.environment["TRAIN_RATIO"] == "0.9"


def docker_args(tmp_path, run: Run) -> dict:
    spec = Runs(None, tmp_path / "library" / "runs", tmp_path, executor=None).spec(run)
    return container_args(spec, owner="library-1234")


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_a_run_renders_the_container_docker_runs(tmp_path, device):
    args = docker_args(tmp_path, run_row(resources={"device": device, "mem_gb": 3, "cpus": 1.5}))
    args["volumes"] = {host.replace(str(tmp_path.resolve()), "<data root>"): mount
                       for host, mount in args["volumes"].items()}
    args["device_requests"] = [dict(r) for r in args.get("device_requests", [])]
    assert args == yaml.safe_load((GOLDEN / f"run-container-{device}.yaml").read_text())
    assert args["network_mode"] == "none" and args["cap_drop"] == ["ALL"] and args["read_only"]
    assert args["mem_limit"] == args["memswap_limit"] == 3 * 1024**3  # no swap past the memory asked for


def test_nothing_outside_the_data_root_can_be_mounted(tmp_path):
    with pytest.raises(ValueError):
        Site("ns", "claim", tmp_path / "data", owner="x").subpath(tmp_path / "elsewhere")


def pod(state: dict, **status) -> dict:
    return {"metadata": {"name": "p"}, "status": {"containerStatuses": [{"name": "run", "state": state}], **status}}


def the_job(*conditions) -> dict:
    return {"status": {"conditions": [{"type": t, "status": "True", "reason": r} for t, r in conditions]}}


NOW = 1_800_000_000
LONG_AGO = "2026-01-01T00:00:00Z"  # further back than the unschedulable bound


@pytest.mark.parametrize("a_job, pods, expected", [
    (the_job(), [], None),
    (the_job(), [pod({"waiting": {"reason": "ContainerCreating"}})], None),
    (the_job(), [pod({"running": {}})], None),
    (the_job(("Complete", None)), [pod({"terminated": {"exitCode": 0}})], ("succeeded", None)),
    (the_job(("Failed", "DeadlineExceeded")), [], ("failed", "max-runtime")),
    (the_job(("Failed", "BackoffLimitExceeded")), [pod({"terminated": {"exitCode": 137, "reason": "OOMKilled"}})],
     ("failed", "oom")),
    (the_job(("Failed", "BackoffLimitExceeded")), [pod({"terminated": {"exitCode": 3, "reason": "Error"}})],
     ("failed", "exit-code")),
    (the_job(), [pod({"waiting": {"reason": "ImagePullBackOff", "message": "not found"}})], ("failed", "platform")),
    (the_job(), [pod({}, phase="Failed", reason="Evicted", message="the node ran out of disk")], ("failed", "platform")),
    (the_job(), [pod({}, conditions=[{"type": "PodScheduled", "status": "False", "lastTransitionTime": LONG_AGO,
                                      "message": "0/3 nodes have 8Gi free"}])], ("failed", "platform")),
    (the_job(("Failed", "PodFailurePolicy")), [], ("failed", "platform")),
    # an evicted pod's container ended too, and its Job failed: still the platform's, not the user's
    (the_job(("Failed", "BackoffLimitExceeded")),
     [pod({"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown"}}, phase="Failed", reason="Evicted",
          message="low on memory")], ("failed", "platform")),
    # the Job says Failed a moment before its pod says how: wait for the pod
    ({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                 "lastTransitionTime": "2027-01-15T08:00:00Z"}]}}, [pod({"running": {}})], None),
    # no pod at all, long after the Job was created (a quota, a refused pod spec)
    ({"metadata": {"creationTimestamp": LONG_AGO}, "status": {}}, [], ("failed", "platform")),
])
def test_job_and_pod_states_map_to_the_run_outcomes_docker_gives(a_job, pods, expected):
    facts = job_end(a_job, pods, now=NOW, unschedulable_after=300)
    if expected is None:
        assert facts is None
    else:
        outcome = decide(**facts)
        assert (outcome.state.value, outcome.reason.value if outcome.reason else None) == expected


def test_a_platform_end_says_what_the_cluster_said():
    unschedulable = pod({}, conditions=[{"type": "PodScheduled", "status": "False", "lastTransitionTime": LONG_AGO,
                                         "message": "0/3 nodes are available: 3 Insufficient memory."}])
    assert "Insufficient memory" in decide(**job_end(the_job(), [unschedulable], NOW, 300)).message
    pull = pod({"waiting": {"reason": "ErrImagePull", "message": "manifest unknown"}})
    assert decide(**job_end(the_job(), [pull], NOW, 300)).message == "ErrImagePull: manifest unknown"
    recent = pod({}, conditions=[{"type": "PodScheduled", "status": "False", "lastTransitionTime": "2027-01-15T08:00:00Z"}])
    assert job_end(the_job(), [recent], NOW, 300) is None  # still within the bound: it may yet be scheduled


# ---- the authorization matrix: every run endpoint x {anonymous, other user, owner, admin}

def add_run(service, owner="olive", status=RunStatus.succeeded) -> int:
    algorithm, dataset = online_algorithm_and_dataset(service)
    with service.sessions() as db:
        run = run_row(id=None, key=None, owner=owner, status=status, reason="", message="", algorithm_label="a",
                      dataset_label="d", metrics={}, attempts=0, description="", algorithm_id=algorithm,
                      dataset_id=dataset)
        run.key = __import__("uuid").uuid4().hex
        db.add(run)
        db.commit()
        return run.id


def online_algorithm_and_dataset(service) -> tuple[int, int]:
    with service.sessions() as db:
        algorithm = Algorithm(name=f"a{__import__('uuid').uuid4().hex[:8]}", version="1", owner="olive",
                              visibility=Visibility.public, status=Status.online, errors=[], progress="",
                              train={"command": ["python3"], "env_vars": {"EPOCHS": {"type": "Integer",
                                                                                      "default": 1}}})
        algorithm.images.append(Image(role="train", filename="train-a-cpu.tar", sha256="0" * 64, size=1,
                                      tag="algorithms/x/a:1-train", status=ImageStatus.valid))
        dataset = Dataset(name="d", version=__import__("uuid").uuid4().hex[:8], owner="olive",
                          visibility=Visibility.public, status=Status.online, errors=[], progress="", format="dir",
                          test_mode="ratio", uploads={}, size=0, manifests={"train": "b" * 64}, report={})
        db.add_all([algorithm, dataset])
        db.commit()
        return algorithm.id, dataset.id


RUN_CALLS = [
    ("GET", "", None), ("PATCH", "", {"description": "changed"}), ("DELETE", "", None),
    ("POST", "/start", None), ("POST", "/stop", None), ("POST", "/rerun", None),
    ("GET", "/metrics", None), ("GET", "/log", None),
]


@pytest.mark.parametrize("method,suffix,body", RUN_CALLS, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("role", ROLES)
def test_run_authorization(library, as_, role, method, suffix, body):
    service, _ = library
    run = add_run(service, status=RunStatus.draft if suffix in ("", "/start") and method != "GET" else
                  RunStatus.succeeded)
    r = as_[role](method, f"runs/{run}{suffix}", **({"json": body} if body is not None else {}))
    expected = EXPECTED["private"][role]  # runs are private to their owner and admins
    if expected == "ok":
        assert allowed(r.status_code), r.text
    else:
        assert r.status_code == expected, r.text
        with service.sessions() as db:
            assert db.get(Run, run) is not None and db.get(Run, run).description == ""


def test_a_run_request_is_checked_before_anything_is_queued(library, as_):
    service, _ = library
    algorithm, dataset = online_algorithm_and_dataset(service)
    owner = as_["owner"]
    ok = owner("POST", "runs", json={"name": "r1", "algorithm": algorithm, "dataset": dataset, "start": True})
    assert ok.status_code == 201 and ok.json()["status"] == "queued" and ok.json()["train_ratio"] == 0.8
    refusals = [
        ({"hyperparameters": {"EPOCHS": "five"}}, 400, "hyperparameters.EPOCHS"),
        ({"resources": {"device": "gpu"}}, 400, "resources.device"),
        ({"resources": {"mem_gb": 512}}, 400, "resources.mem_gb"),
        ({"max_runtime": 10**7}, 400, "max_runtime"),
        ({"algorithm": 999999}, 404, "algorithm"),
    ]
    for change, status, field in refusals:
        r = owner("POST", "runs", json={"name": "r2", "algorithm": algorithm, "dataset": dataset, **change})
        assert (r.status_code, r.json()["error"]["field"]) == (status, field), r.text
    assert as_["other"]("GET", f"runs/{ok.json()['id']}").status_code == 404
    assert ok.json()["id"] not in [r["id"] for r in as_["other"]("GET", "runs").json()["items"]]


def test_a_service_renders_a_deployment_and_a_service_that_kubernetes_accepts(tmp_path):
    site = Site("workspaces", "workspace-hub-data", tmp_path, owner="library-1234")
    spec = ReplicaSpec("algorithms/abc/bayes:1.0-predict", "service", tmp_path / "library" / "trees" / "c",
                       key="s" * 32)
    manifests = [deployment(site, spec, 2, "olive/echo"), service(site, spec)]
    for manifest in manifests:
        kubernetes_validate.validate(manifest, "1.30", strict=True)
    the_deployment, the_service = manifests
    assert yaml.safe_load((GOLDEN / "service.yaml").read_text()) == manifests
    pod_spec = the_deployment["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/health"
    assert pod_spec["containers"][0]["volumeMounts"][0]["readOnly"] and pod_spec["automountServiceAccountToken"] is False
    assert the_service["spec"]["selector"] == the_deployment["spec"]["selector"]["matchLabels"]
    assert deployment(site, spec, 0, "x")["spec"]["replicas"] == 0  # stopping scales to 0; the Service stays
