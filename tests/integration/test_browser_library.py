"""The library in a real browser: from the hub's Services menu to an algorithm brought online.

Debian's chromium through Playwright, against a real hub whose library
validates and loads the uploads into the real engine.  Screenshots go to
``tests/artifacts/library-*.png``.
"""

import pytest
from playwright.sync_api import expect

from harness.imagetars import minimal_image
from harness.library import Client

from .conftest import login, shot

pytestmark = [pytest.mark.docker, pytest.mark.browser]


def open_library(page, hub):
    login(page, hub)
    page.click("text=Services")
    page.click("a.dropdown-item:has-text('library')")
    page.wait_for_url("**/services/library/")  # hub OAuth, no confirmation page
    page.wait_for_selector("#items")
    shot(page, "library-01-list")


def fill_publish_form(page, hub, name: str, tar, smoke: bool = True):
    """Fill in the publish form and submit it."""
    page.goto(f"{hub.url}/services/library/publish")
    page.fill("#name", name)
    page.fill("#purpose_second", "classification")
    page.set_input_files("#train", str(tar))
    if not smoke:
        page.uncheck("#smoke")
    page.click("#publish button[type=submit]")


def test_publish_by_upload_see_errors_then_bring_a_good_one_online(hub, page, tmp_path):
    open_library(page, hub)

    bad = tmp_path / "train-broken-cpu.tar"
    bad.write_bytes(b"not a tar at all " * 4096)
    fill_publish_form(page, hub, "broken", bad)
    page.wait_for_selector("#upload-progress:has-text('100%')")
    shot(page, "library-02-upload-progress")
    page.wait_for_url("**/services/library/algorithms/*")
    page.wait_for_selector("#status:has-text('failed')")
    assert "not-a-tar" in page.inner_text("#errors")
    shot(page, "library-03-validation-errors")

    good = minimal_image(tmp_path / "train-digits-cpu.tar", algorithm={"name": "digits", "kind": "train"})
    fill_publish_form(page, hub, "digits", good, smoke=False)  # the minimal image has no program: admins may skip
    page.wait_for_url("**/services/library/algorithms/*")
    page.wait_for_selector("#status:has-text('ready')")
    page.click("#online")
    page.wait_for_selector("#status:has-text('online')")
    expect(page.locator("#delete")).to_be_hidden()  # an online version cannot be deleted: not offered
    expect(page.locator("#offline")).to_be_visible()
    shot(page, "library-04-online")

    page.goto(f"{hub.url}/services/library/")
    page.fill("input[name=q]", "digits")
    page.select_option("select[name=status]", "online")
    page.click("#filters button[type=submit]")
    page.wait_for_selector("#items tbody tr:has-text('digits')")
    # the unfiltered table also holds a digits row: wait for the filtered answer to replace it
    expect(page.locator("#items tbody tr")).to_have_count(1)
    shot(page, "library-05-filtered")


def test_a_taken_version_is_reported_on_the_form(hub, page, tmp_path):
    login(page, hub)
    tar = minimal_image(tmp_path / "train-twice-cpu.tar")
    fill_publish_form(page, hub, "twice", tar, smoke=False)
    page.wait_for_url("**/services/library/algorithms/*")
    fill_publish_form(page, hub, "twice", tar, smoke=False)
    page.wait_for_selector("#flash:has-text('version 1.0 exists; publish a new version')")
    shot(page, "library-06-conflict")


def test_the_base_envs_page_says_which_envs_this_host_cannot_start(hub, page):
    """Issue 25, bug 8: a GPU env on a host without a GPU runtime is listed as not available, with the reason."""
    login(page, hub)
    page.goto(f"{hub.url}/services/library/envs")
    gpu = page.locator("#items tbody tr", has_text="pytorch-gpu")
    expect(gpu.locator(".env-unavailable")).to_have_text("needs a GPU: this host's engine has no GPU runtime")
    python = page.locator("#items tbody tr").filter(has=page.locator("td:first-child", has_text="python"))
    expect(python.locator(".badge")).to_have_text("online")
    shot(page, "library-envs-availability")


def test_an_admin_edits_a_base_envs_basic_information_on_its_page(hub, page):
    """Manual 2.5.2 and 2.5.6: a base env's description and visibility are edited on its page."""
    login(page, hub)
    client = Client(f"{hub.url}/services/library/", hub.user_token("admin"))
    [keras] = client("GET", "envs", params={"name": "keras"}).json()["items"]
    page.goto(f"{hub.url}/services/library/envs/{keras['id']}")
    page.fill("#basics-description", "Keras 3 on TensorFlow, for the image samples")
    page.select_option("#basics-visibility", "public")
    page.click("#basics-save")
    page.wait_for_selector("#basics-saved:not(.d-none)")
    shot(page, "library-env-edited")
    edited = client("GET", f"envs/{keras['id']}").json()
    assert (edited["description"], edited["visibility"]) == ("Keras 3 on TensorFlow, for the image samples", "public")
    assert client("PATCH", f"envs/{keras['id']}", json={"visibility": "preset",
                                                        "description": keras["description"]}).status_code == 200


def test_an_algorithms_commands_variables_and_interface_are_typed_fields_not_json(hub, page):
    """Manual 2.2.1 and 2.2.3: the train and predict settings are fields and tables, on the edit page and on the
    algorithm's page; nothing asks for or shows JSON."""
    login(page, hub)
    client = Client(f"{hub.url}/services/library/", hub.user_token("admin"))
    draft = client("POST", "algorithms", json={
        "name": "typed-fields", "version": "1.0", "purpose": {"first": "text", "second": "classification"},
        "train": {"command": ["python", "src/train.py"], "env_vars": {
            "EPOCHS": {"type": "Integer", "default": 5, "range": [1, 100], "description": "passes over the data"},
            "DEVICE": {"type": "String", "default": "cpu", "choices": ["cpu", "cuda"]}}},
        "predict": {"command": ["python", "src/api.py"], "interface": {"name": "classify", "method": "POST", "params": [
            {"name": "text", "type": "String", "required": True, "test_value": "足球"}]}}}).json()
    page.goto(f"{hub.url}/services/library/algorithms/{draft['id']}/edit")
    row = page.locator("#train-env tbody tr").first
    expect(row.locator("[data-field=name]")).to_have_value("EPOCHS")
    row.locator("[data-field=default]").fill("8")
    page.click("#train-env-add")
    added = page.locator("#train-env tbody tr").nth(2)
    added.locator("[data-field=name]").fill("LEARNING_RATE")
    added.locator("[data-field=type]").select_option("Float")
    added.locator("[data-field=default]").fill("0.01")
    page.locator("#predict-params tbody tr").first.locator("[data-field=description]").fill("the text to classify")
    assert page.locator("textarea.font-monospace").count() == 4 and "{" not in page.inner_text("#edit-form")
    shot(page, "library-algorithm-edit-typed")
    page.click("#edit-save")
    page.wait_for_url(f"**/services/library/algorithms/{draft['id']}")
    saved = client("GET", f"algorithms/{draft['id']}").json()
    assert saved["train"]["env_vars"] == {
        "EPOCHS": {"type": "Integer", "default": 8, "range": [1, 100], "description": "passes over the data"},
        "DEVICE": {"type": "String", "default": "cpu", "choices": ["cpu", "cuda"]},  # kept, though not a column
        "LEARNING_RATE": {"type": "Float", "default": 0.01}}
    assert saved["train"]["command"] == ["python", "src/train.py"]
    assert saved["predict"]["interface"]["params"] == [{"name": "text", "type": "String", "required": True,
                                                        "test_value": "足球", "description": "the text to classify"}]
    expect(page.locator("#train .env-vars td").first).to_have_text("EPOCHS")
    assert "{" not in page.inner_text("#train")
    shot(page, "library-algorithm-typed")


def test_library_pages_wear_the_hubs_header_with_admin_and_fit_a_phone(hub, page):
    """One look: the hub's logo at the hub's size (its stylesheet styles #jupyterhub-logo), Admin for admins,
    and a navbar that wraps on a 375 px phone instead of scrolling."""
    open_library(page, hub)
    assert page.locator("#jupyterhub-logo img").bounding_box()["height"] <= 40
    expect(page.locator("#nav-admin")).to_be_visible()
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.locator("nav.navbar").evaluate("nav => nav.scrollWidth <= nav.clientWidth")
    shot(page, "library-phone-header")
    page.set_viewport_size({"width": 1280, "height": 800})
