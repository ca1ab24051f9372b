"""A new user trains the preset text classifier in the browser, without writing code, then again with `ws runs`,
and serves the model it produced: a service with 2 replicas, tested in the browser, called with a token.

The hub starts as `ws up --envs python,pytorch` starts it: the three preset
algorithms (manual 2.2.6) are built from the samples and seeded, online, with
no admin step.  nina signs up, is authorized, logs in, and goes through the
wizard with the bayes preset and the preset ``news-texts`` dataset.  She
watches the log lines and the loss curve arrive, and gets a model.  The other
two presets train on their preset datasets through the wizard's API and serve.
"""

import hashlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect
import requests

from harness.library import Client
from harness.tenants import zipped
from harness.waiting import wait_until
from workspace_hub.catalog import REPO_ROOT

from .conftest import running_hub, shot

pytestmark = [pytest.mark.docker, pytest.mark.browser]
USER, PASSWORD = "nina", "a-long-passphrase-9"
WS = str(Path(sys.executable).with_name("ws"))


@pytest.fixture(scope="module")
def hub(engine, tmp_path_factory):
    """A hub started as `ws up --envs python,pytorch` starts one: with the three preset algorithms built."""
    with running_hub(engine, tmp_path_factory, presets=True) as hub:
        yield hub


def preset(hub, name: str) -> dict:
    """The preset algorithm *name*, once the library has seeded and validated it (smoke runs included)."""
    admin = Client(f"{hub.url}/services/library/", hub.user_token("admin"))

    def seeded():
        found = admin("GET", "algorithms", params={"name": name, "owner": "workspace-hub"}).json()["items"]
        return found and found[0]["status"] not in ("draft", "validating") and found[0]
    item = wait_until(seeded, timeout=900, what=f"the preset {name} to be validated")
    item = admin("GET", f"algorithms/{item['id']}").json()
    assert (item["status"], item["visibility"]) == ("online", "preset"), item["errors"]
    return item


@pytest.fixture(scope="module")
def preset_classifier(hub):
    """The bayes preset: seeded by the library on its first start, online, never uploaded by anyone."""
    item = preset(hub, "text-classify-bayes")
    assert item["train"]["env_vars"]["EPOCHS"]
    return item["id"]


@pytest.fixture(scope="module")
def nina(hub):
    """A new user: signs up, is authorized by the admin."""
    session = requests.Session()
    session.get(f"{hub.url}/hub/signup", timeout=30)
    session.post(f"{hub.url}/hub/signup", timeout=30, data={
        "username": USER, "signup_password": PASSWORD, "signup_password_confirmation": PASSWORD,
        "_xsrf": session.cookies.get("_xsrf")})
    hub.login("admin", hub.admin_password).get(f"{hub.url}/hub/authorize/{USER}", timeout=30)
    return USER


def test_a_new_user_trains_the_preset_classifier_in_the_wizard(hub, page, preset_classifier, nina):
    hub.dataset("news-texts")
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", USER)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url("**/hub/home")
    page.goto(f"{hub.url}/services/library/runs/new")
    # the manual's steps, one at a time (2.3.1): purpose, basic information, algorithm, dataset, save or start
    expect(page.locator("#steps .active")).to_have_text("1. Purpose")
    page.select_option("#purpose", "text")
    page.click("#next")
    page.fill("#name", "My Run")
    page.click("#next")
    expect(page.locator("#steps .active")).to_have_text("2. Basic information")  # the name breaks its rule
    page.fill("#name", "my-first-run")
    page.click("#next")
    page.select_option("#source", "preset")  # mine, preset or others' public ones
    page.wait_for_selector("#algorithm option:has-text('text-classify-bayes 1.0 (preset')", state="attached")
    page.wait_for_load_state("networkidle")  # the lists have settled
    page.fill("#hp-EPOCHS", "4")
    assert page.inner_text("#hp-help-EPOCHS") == "passes over the training data (1 to 1000)"  # the algorithm's words
    page.click("#next")
    page.select_option("#dataset", label="news-texts 1 (dir, workspace-hub)")
    page.fill("#train-ratio", "0.9")
    datasets = page.locator("#dataset option").all_inner_texts()
    assert datasets and all("digits" not in d for d in datasets)  # an image dataset is not offered to a text task
    shot(page, "runs-01-wizard")
    page.click("#next")
    page.click("#save")  # a saved task, edited later (2.3.3)
    page.wait_for_url(re.compile(r".*/services/library/runs/\d+$"))
    run_id = page.url.rsplit("/", 1)[1]
    page.wait_for_selector("#status:has-text('draft')")
    page.click("#edit")
    expect(page.locator("#wizard-title")).to_have_text("Edit training run my-first-run")
    for _ in range(2):
        page.click("#next")
    expect(page.locator("#hp-EPOCHS")).to_have_value("4")
    page.fill("#hp-EPOCHS", "6")
    page.click("#next")
    assert page.eval_on_selector("#dataset", "s => s.options[s.selectedIndex].text").startswith("news-texts")
    expect(page.locator("#train-ratio")).to_have_value("0.9")
    page.click("#next")
    shot(page, "runs-01b-edit")
    page.click("#start")
    page.wait_for_url(re.compile(rf".*/services/library/runs/{run_id}$"))
    client = Client(f"{hub.url}/services/library/", hub.user_token(USER))
    try:
        page.wait_for_selector("#log:has-text('metric: epoch=1')")
    except Exception:
        shot(page, "runs-01-failed")
        raise AssertionError(client("GET", f"runs/{run_id}").json()) from None
    page.wait_for_selector("svg.chart[data-metric='loss'] polyline")
    page.wait_for_selector("#status:has-text('succeeded')", timeout=300_000)
    page.wait_for_function("document.querySelectorAll(\"svg.chart[data-metric='loss'] circle\").length === 6")
    assert "metric: epoch=6" in page.inner_text("#log")
    expect(page.locator("#fields .pairs tr", has_text="EPOCHS")).to_have_text("EPOCHS6")  # a table, not JSON
    assert "accuracy" in page.inner_text("#final")
    shot(page, "runs-02-succeeded")


def test_the_same_run_through_ws_runs(hub, preset_classifier, nina):
    env = {**os.environ, "WSHUB_LIBRARY_URL": f"{hub.url}/services/library/",
           "JUPYTERHUB_API_TOKEN": hub.user_token(USER)}
    out = subprocess.run([WS, "runs", "create", "--name", "from-the-cli", "--algorithm", "text-classify-bayes",
                          "--dataset", "news-texts", "--set", "EPOCHS=3", "--ratio", "0.8", "--start", "-f"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "metric: epoch=3" in out.stdout and "-- succeeded" in out.stderr
    listing = subprocess.run([WS, "runs", "list"], env=env, capture_output=True, text=True, check=True).stdout
    assert "from-the-cli" in listing and "my-first-run" in listing


def test_the_model_becomes_a_service_tested_in_the_browser_and_called_with_a_token(hub, page, preset_classifier,
                                                                                    nina):
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", USER)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url("**/hub/home")
    client = Client(f"{hub.url}/services/library/", hub.user_token(USER))
    [model] = client("GET", "models", params={"name": "my-first-run"}).json()["items"]
    page.goto(f"{hub.url}/services/library/models")  # her own models say "mine"; the shared center lists others'
    page.select_option("#scope", "mine")
    page.click("#filters button[type=submit]")
    expect(page.locator("#items tbody tr")).to_have_count(2)  # the wizard's run and the one from `ws runs`
    expect(page.locator("#items tbody tr .mine")).to_have_text(["mine", "mine"])
    page.select_option("#scope", "shared")
    page.click("#filters button[type=submit]")
    expect(page.locator("#items tbody tr")).to_have_count(0)
    page.goto(f"{hub.url}/services/library/models/{model['id']}")
    page.wait_for_selector("#title:has-text('my-first-run 1')")
    # its basic information and visibility, on the page (manual 2.4)
    page.fill("#basics-description", "my first classifier")
    page.select_option("#basics-visibility", "public")
    page.click("#basics-save")
    page.wait_for_selector("#basics-saved:not(.d-none)")
    edited = client("GET", f"models/{model['id']}").json()
    assert (edited["description"], edited["visibility"]) == ("my first classifier", "public")
    assert "{" not in page.inner_text("#fields")  # the hyperparameters are a table
    # publishing asks for the service's name and replica count
    assert page.input_value("#service-name") == "my-first-run" and page.input_value("#service-replicas") == "2"
    shot(page, "services-01-model")
    page.click("#publish-service")
    page.wait_for_url(re.compile(r".*/services/library/services/\d+$"))
    page.wait_for_selector("#status:has-text('running')", timeout=180_000)
    assert page.inner_text("#view-run") == "my-first-run"  # "view task": the run that trained the model
    assert page.input_value("#param-text") == "足球"
    page.click("#test")
    page.wait_for_selector("#test-result:has-text('HTTP 200')")
    assert '"label"' in page.inner_text("#test-result")
    shot(page, "services-02-tested")

    address = f"{hub.url}/services/library/serve/{USER}/my-first-run/classification_param"
    answer = requests.post(address, json={"text": "股票市场今天大幅上涨"}, timeout=60,
                           headers={"Authorization": f"token {hub.user_token(USER)}"})
    assert answer.status_code == 200 and answer.json()["label"] in ("finance", "sports", "tech")
    hub.api("POST", "/users/otto")
    stranger = requests.post(address, json={"text": "x"}, timeout=60,
                             headers={"Authorization": f"token {hub.user_token('otto')}"})
    assert stranger.status_code == 404  # a private service: another user cannot call it through the proxy
    page.select_option("#share-visibility", "public")
    page.click("#share-save")
    wait_until(lambda: requests.post(address, json={"text": "x"}, timeout=60, headers={
        "Authorization": f"token {hub.user_token('otto')}"}).status_code == 200, what="the shared service")
    shot(page, "services-03-shared")


def test_the_service_survives_a_killed_replica_a_kill_9_of_the_library_and_a_stop(hub, engine, nina):
    """Through the real hub: the service of the test above, by its owner's token."""
    token = hub.user_token(USER)
    client = Client(f"{hub.url}/services/library/", token)
    [service] = [s for s in client("GET", "services").json()["items"] if s["name"] == "my-first-run"]
    address = f"{hub.url}/services/library/serve/{USER}/my-first-run/classification_param"

    def answers() -> bool:
        r = requests.post(address, json={"text": "足球比赛"}, timeout=60, headers={"Authorization": f"token {token}"})
        return r.status_code == 200

    def state() -> str:
        return client("GET", f"services/{service['id']}").json()["status"]

    owner = "library-" + hashlib.sha256(str(hub.data_root.resolve()).encode()).hexdigest()[:12]

    def replica_ids() -> list[str]:
        return sorted(c.id for c in engine.containers.list(filters={"label": f"ai.workspace-hub.owner={owner}"})
                      if c.labels.get("ai.workspace-hub.run") == "service")

    replicas = replica_ids()
    assert len(replicas) == 2
    engine.containers.get(replicas[0]).kill()
    wait_until(lambda: state() == "degraded", timeout=30, interval=0.1, what="degraded")
    assert answers()  # the other replica serves meanwhile
    wait_until(lambda: state() == "running", timeout=120, what="a replacement replica")

    before = replica_ids()
    pid = hub.service_pid()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: (new := hub.service_pid()) and new != pid, timeout=120, what="the hub to restart the library")
    wait_until(lambda: requests.get(f"{hub.url}/services/library/api/me", timeout=5).status_code == 401,
               timeout=120, what="the library to answer")
    wait_until(answers, timeout=60, what="the service to answer after the restart")
    assert replica_ids() == before  # the same replicas, found again by label: none was restarted

    client("POST", f"services/{service['id']}/stop")
    assert requests.post(address, json={"text": "x"}, timeout=60,
                         headers={"Authorization": f"token {token}"}).status_code == 503
    client("POST", f"services/{service['id']}/start", json={"replicas": 1})
    wait_until(answers, timeout=120, what="the same address to serve again")


@pytest.mark.parametrize("name, dataset, metric", [("image-classify-torch", "digits", "accuracy"),
                                                   ("object-detect-torch", "shapes", "map_50")])
def test_the_other_presets_train_in_the_wizard_and_serve(hub, nina, name, dataset, metric):
    algorithm = preset(hub, name)
    client = Client(f"{hub.url}/services/library/", hub.user_token(USER))
    data = hub.dataset(dataset)
    r = client("POST", "runs", json={"name": f"try-{name}", "algorithm": algorithm["id"], "dataset": data["id"],
                                     "train_ratio": 0.8, "start": True})
    assert r.status_code == 201, r.text
    run = wait_until(lambda: (x := client("GET", f"runs/{r.json()['id']}").json())["status"] not in (
        "queued", "starting", "running") and x, timeout=600, what=f"the {name} run")
    assert run["status"] == "succeeded", run
    assert run["metrics"][metric] >= 0.5, run["metrics"]  # with the preset's defaults, on its preset dataset
    [model] = client("GET", "models", params={"name": f"try-{name}"}).json()["items"]
    service = client("POST", "services", json={"name": f"try-{name}", "model": model["id"], "replicas": 1}).json()
    wait_until(lambda: client("GET", f"services/{service['id']}").json()["status"] == "running", timeout=180,
               what=f"the {name} service")
    interface = algorithm["predict"]["interface"]
    params = {p["name"]: p.get("test_value") for p in interface["params"]}
    answer = requests.post(f"{hub.url}/services/library/serve/{USER}/try-{name}/{interface['name']}", json=params,
                           headers={"Authorization": f"token {hub.user_token(USER)}"}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()


# Manual 2.1.1 ... 2.7.12: where each function is, and what on that page does it.  Pages are under the library
# unless they start with /hub/; {names} are nina's own items, made in the walk below.
MANUAL = [
    ("2.1.1 new dataset", "datasets", "#new-dataset"),
    ("2.1.2 import a dataset", "datasets/new", "#file-train"),
    ("2.1.3 edit a dataset", "datasets/{dataset}", "#share-save"),
    ("2.1.4 delete a dataset", "datasets/{dataset}", "#delete"),
    ("2.1.5 dataset details", "datasets/{preset_dataset}", "#split-train"),
    ("2.1.6 bring a dataset online", "datasets/{dataset}", "#online"),
    ("2.1.7 dataset visibility", "datasets/{dataset}", "#share-visibility"),
    ("2.2.1 new algorithm", "publish", "#publish"),
    ("2.2.2 edit an algorithm", "algorithms/{algorithm}/edit", "#train-command"),
    ("2.2.3 train image", "publish", "#train-reference"),
    ("2.2.4 predict image", "publish", "#predict-reference"),
    ("2.2.5 bring an algorithm online", "algorithms/{algorithm}", "#online"),
    ("2.2.6 algorithm visibility", "algorithms/{algorithm}/edit", "#visibility"),
    ("2.3.1 new training task", "runs/new", "#purpose"),
    ("2.3.2 delete a task", "runs/{draft}", "#delete"),
    ("2.3.3 edit a task", "runs/{draft}", "#edit"),
    ("2.3.4 start a task", "runs/{draft}", "#start"),
    ("2.3.5 task details", "runs/{run}", "svg.chart[data-metric='loss']"),
    ("2.3.5 its model by name and version", "runs/{run}", "#fields a:text-is('my-first-run 1')"),
    ("2.4 models: the shared center", "models?scope=shared", "#scope"),
    ("2.4 a model: visibility, download, publish as a service", "models/{model}", "#publish-service"),
    ("2.5.1 new base env", "envs/new", "#env-new"),
    ("2.5.2 edit a base env", "envs/{env}", "#basics-save"),
    ("2.5.3 base env details", "envs/{env}", "#fields"),
    ("2.5.4 delete a base env", "envs/{env}", "#delete"),
    ("2.5.5 base env image", "envs/new", "#reference"),
    ("2.5.6 base env visibility", "envs/{env}", "#basics-visibility"),
    ("2.6.1 new project", "/hub/home", "#new-project-env"),
    ("2.6.2 bring code in", "projects/new?name=walk-git&env=python&source=git", "#url"),
    ("2.6.4 open a project", "/hub/home", "#projects a.open-server"),
    ("2.6.5 download its code", "/hub/home", "#download-walk"),
    ("2.6.6 download its model", "/hub/home", "#download-model-walk"),
    ("2.6.7 publish it to the library", "/hub/home", "#publish-walk"),
    ("2.7.1 new service", "services", "#new-service"),
    ("2.7.2 its image", "services/new", "#predict-reference"),
    ("2.7.3 edit a service", "services/{service}", "#share-description"),
    ("2.7.4 delete a service", "services/{service}", "#delete"),
    ("2.7.5 start a service", "services/{service}", "#start"),
    ("2.7.6 stop a service", "services/{service}", "#stop"),
    ("2.7.7 its replicas", "services/{service}", "#replicas"),
    ("2.7.8 service details", "services/{service}", "#metrics"),
    ("2.7.9 test online", "services/{service}", "#test"),
    ("2.7.10 redo", "services/{service}", "#redo"),
    ("2.7.11 view its model", "services/{service}", "#fields a[href*='models/']:text-is('my-first-run 1')"),
    ("2.7.12 view its task", "services/{service}", "#view-run"),
]


def test_a_user_with_no_code_reaches_every_function_of_the_manual_from_a_page(hub, page, nina, container_of):
    """nina finds each function of the manual's sections 2.1-2.7 on a page, with her own items where the
    function changes one: a dataset she uploaded, the bayes sample's algorithm published from a project she made
    with the sample as its code (built there with `make build_cpu`, no code written), a base env, a draft
    run, and the model and service of the tests above.  A screenshot of each is saved (manual-<section>.png)."""
    client = Client(f"{hub.url}/services/library/", hub.user_token(USER))
    bayes = preset(hub, "text-classify-bayes")
    news = hub.dataset("news-texts")
    [run] = [r for r in client("GET", "runs", params={"per_page": 100}).json()["items"] if r["name"] == "my-first-run"]
    [model] = client("GET", "models", params={"name": "my-first-run"}).json()["items"]
    [service] = [s for s in client("GET", "services").json()["items"] if s["name"] == "my-first-run"]
    texts = zipped({"sports/1.txt": "足球比赛".encode(), "finance/1.txt": "股票市场".encode()})
    dataset = client("POST", "datasets", json={"name": "walk-texts", "version": "1", "format": "dir",
                                               "archives": {"train": {"size": len(texts)}}}).json()
    assert client("PATCH", f"datasets/{dataset['id']}/archives/train", data=texts, headers={
        "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}).status_code == 204
    assert client("POST", "projects/walk/code", json={"source": "sample", "sample": "text-classify-bayes"}).ok
    hub.start_project(USER, "walk", env="python")
    code, out = container_of(USER, "walk").exec_run(
        ["bash", "-lc", "cd /project/code/text-classify-bayes-train-demo && make build_cpu"], user="1000")
    assert code == 0, out.decode()[-2000:]
    algorithm = client("POST", "algorithms/from-project", json={"project": "walk"}).json()
    ids = {"dataset": dataset["id"], "preset_dataset": news["id"], "algorithm": algorithm["id"],
           "draft": client("POST", "runs", json={"name": "walk-draft", "algorithm": bayes["id"],
                                                 "dataset": news["id"]}).json()["id"],
           "run": run["id"], "model": model["id"], "service": service["id"],
           "env": client("POST", "envs", json={"name": "walk-env", "version": "1"}).json()["id"]}
    for kind in ("datasets", "algorithms"):
        item = wait_until(lambda kind=kind: (x := client("GET", f"{kind}/{ids[kind[:-1]]}").json())["status"]
                          not in ("uploading", "validating") and x, timeout=300, what=f"nina's {kind[:-1]}")
        assert item["status"] == "ready", item
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", USER)
    page.fill("#password_input", PASSWORD)
    page.click("#login_submit")
    page.wait_for_url("**/hub/home")
    for section, where, selector in MANUAL:
        path = where.format(**ids)
        page.goto(f"{hub.url}{path}" if path.startswith("/hub/") else f"{hub.url}/services/library/{path}")
        found = page.locator(selector).first
        expect(found, f"{section}: {selector} on {path}").to_be_visible()
        found.scroll_into_view_if_needed()
        shot(page, "manual-" + section.replace(" ", "-").replace(":", "").replace(",", ""))
    hub.stop_project(USER, "walk")
    page.goto(f"{hub.url}/hub/home")
    expect(page.locator("#start-walk"), "2.6.3 start a project").to_be_visible()
    shot(page, "manual-2.6.3-start-a-project")

