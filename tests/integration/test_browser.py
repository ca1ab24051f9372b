"""In a real browser: log in, create a project from the spawn form, land in JupyterLab.

Debian's chromium, driven by Playwright through ``executable_path`` (Playwright
never downloads a browser here).  Screenshots go to ``tests/artifacts/``.
"""

import pytest

from .conftest import login, shot

pytestmark = [pytest.mark.docker, pytest.mark.browser]

def test_login_create_project_and_land_in_jupyterlab(hub, page):
    login(page, hub)
    page.goto(f"{hub.url}/hub/home")
    page.fill(".new-server-name", "browser-demo")
    shot(page, "02-home")
    page.click(".new-server-btn")
    # JupyterHub 6 creates the named server, reloads, and offers "start" in its row
    page.click("#start-browser-demo")

    page.wait_for_selector("#spawn_form select[name=env]")
    page.select_option("select[name=env]", "python")
    page.select_option("select[name=dataset]", "digits")
    shot(page, "03-spawn-form")
    page.click("#spawn_form button[type=submit]")

    page.wait_for_url("**/user/admin/browser-demo/lab**", timeout=120_000)
    page.wait_for_selector(".jp-LabShell", timeout=120_000)
    page.wait_for_selector(".jp-DirListing-item[title*='dataset'], .jp-DirListing-itemName:has-text('dataset')")
    shot(page, "04-jupyterlab")
    names = page.locator(".jp-DirListing-itemName").all_inner_texts()
    assert {"code", "model", "docker_image", "dataset", "help_doc"} <= set(names)


def test_a_bad_choice_is_shown_on_the_form_not_a_500(hub, page):
    login(page, hub)
    page.goto(f"{hub.url}/hub/spawn/admin/bad-choice")
    page.wait_for_selector("#spawn_form select[name=env]")
    # a tampered form: an env that is not in the catalog
    page.evaluate("""() => {
        const select = document.querySelector('select[name=env]');
        select.add(new Option('cobol', 'cobol', true, true));
    }""")
    page.click("#spawn_form button[type=submit]")
    page.wait_for_selector("text=Unknown base env 'cobol'")
    shot(page, "05-bad-choice")
    assert page.locator("#spawn_form").is_visible()


def test_the_hub_is_never_open(hub, page):
    page.goto(f"{hub.url}/hub/home")
    page.wait_for_url("**/hub/login**")
    page.fill("#username_input", "admin")
    page.fill("#password_input", "not-the-password")
    page.click("#login_submit")
    page.wait_for_selector("text=Invalid username or password")
    assert "/hub/login" in page.url
