"""In a real browser: log in, create a project on the Projects page, land in JupyterLab, stop and delete it.

Debian's chromium, driven by Playwright through ``executable_path`` (Playwright
never downloads a browser here).  Screenshots go to ``tests/artifacts/``.
"""

import html
import re
import zipfile
from pathlib import Path

import pytest

from workspace_hub.projects import user_dir_name

from .conftest import login, shot

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.docker, pytest.mark.browser]

def test_login_create_project_and_land_in_jupyterlab(hub, page):
    """The Projects page: name, env and dataset in one step, then JupyterLab."""
    login(page, hub)
    page.goto(f"{hub.url}/hub/home")
    page.wait_for_selector("h1:has-text('Projects')")
    page.fill("#new-project-name", "browser-demo")
    page.select_option("#new-project-env", "python")
    page.select_option("#new-project-dataset", label="digits 1 (dir)")
    shot(page, "02-projects-new")
    page.click("#new-project-create")

    page.wait_for_url("**/user/admin/browser-demo/lab**", timeout=120_000)
    page.wait_for_selector(".jp-LabShell", timeout=120_000)
    page.wait_for_selector(".jp-DirListing-item[title*='dataset'], .jp-DirListing-itemName:has-text('dataset')")
    shot(page, "04-jupyterlab")
    names = page.locator(".jp-DirListing-itemName").all_inner_texts()
    assert {"code", "model", "docker_image", "dataset", "help_doc"} <= set(names)


def test_a_projects_code_downloads_as_a_zip_without_what_its_links_point_at(hub, page, tmp_path):
    """Manual 2.6.5: a project's code folder as a zip, from the Projects page.  The folder is the user's to
    write: a link in it to another file of the host, or to a folder, is left out, never followed."""
    code = hub.data_root / "users" / user_dir_name("admin") / "browser-demo" / "code"
    (code / "app").mkdir(parents=True, exist_ok=True)
    (code / "app" / "hello.py").write_text("print('hello')\n")
    (code / "leak").symlink_to("/etc/passwd")
    (code / "everything").symlink_to("/")
    login(page, hub)
    page.goto(f"{hub.url}/hub/home")
    with page.expect_download() as download:
        page.click("#download-browser-demo")
    saved = tmp_path / "code.zip"
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        names = archive.namelist()
        assert archive.read("app/hello.py") == b"print('hello')\n"
    assert "leak" not in names and not any(n.startswith("everything/") for n in names), names
    assert download.value.suggested_filename == "browser-demo-code.zip"


def test_publishing_a_project_from_its_row_names_what_is_missing(hub, page):
    """Manual 2.6.7: "publish to the library" on a project's row; a project whose docker_image is empty is
    told to build first."""
    login(page, hub)
    page.goto(f"{hub.url}/hub/home")
    page.click("#publish-browser-demo")
    page.wait_for_url("**/services/library/publish?project=browser-demo")
    assert page.input_value("#project") == "browser-demo"
    page.click("#publish-project")
    page.wait_for_selector("#flash:has-text('has no image tars; run `ws build` first')")
    shot(page, "06-publish-project-refused")


def test_the_projects_page_lists_env_dataset_and_status_and_stops_and_deletes(hub, page):
    login(page, hub)
    page.goto(f"{hub.url}/hub/home")
    row = page.locator("tr[data-server-name='browser-demo']")
    row.wait_for()
    cells = row.locator("td").all_inner_texts()
    assert cells[1].startswith("Python") and cells[2] == "digits 1 (dir)" and cells[3] == "running", cells
    assert page.locator("#library-links a:has-text('Algorithms')").get_attribute("href") == "/services/library/"
    assert page.locator("a.nav-link:has-text('Admin')").count() == 1  # admins still reach the stock admin page
    shot(page, "02-projects")
    row.locator(".stop-server").click()
    page.wait_for_selector("tr[data-server-name='browser-demo'] .project-status:has-text('stopped')", timeout=60_000)
    shot(page, "02-projects-stopped")
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("tr[data-server-name='browser-demo'] .delete-server").click()
    page.wait_for_selector("tr[data-server-name='browser-demo']", state="detached")
    assert hub.server("admin", "browser-demo") is None


def add_env_option(page, select: str, env: str) -> None:
    """What a hostile user does in the browser's console: offer and choose an env the hub did not."""
    page.evaluate("([select, env]) => document.querySelector(select).add(new Option(env, env, true, true))",
                  [select, env])


def test_a_refused_new_project_shows_the_rule_not_a_500(hub, page):
    login(page, hub)
    page.goto(f"{hub.url}/hub/home")
    page.fill("#new-project-name", "bad-choice")
    add_env_option(page, "#new-project-env", "cobol")  # a tampered form: an env that is not offered
    page.click("#new-project-create")
    page.wait_for_selector("text=Unknown base env 'cobol'")
    shot(page, "05-projects-refused")


def test_a_bad_choice_is_shown_on_the_form_not_a_500(hub, page):
    login(page, hub)
    page.goto(f"{hub.url}/hub/spawn/admin/bad-choice")
    page.wait_for_selector("#spawn_form select[name=env]")
    add_env_option(page, "select[name=env]", "cobol")  # a tampered form: an env that is not in the catalog
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


def test_every_form_pattern_is_a_regular_expression_the_browser_applies(page):
    """Issue 25, bug 5: an ``<input pattern>`` is compiled with the ``v`` flag, where ``[a-z0-9-]`` is a syntax
    error; Chromium then skips the check.  Each pattern in the hub's and the library's templates compiles."""
    patterns = {html.unescape(p) for template in [*REPO.glob("hub_config/templates/*.html"),
                                                    *REPO.glob("workspace_library/templates/*.html")]
                for p in re.findall(r'pattern="([^"]*)"', template.read_text())}
    assert len(patterns) >= 5
    broken = page.evaluate("""(patterns) => patterns.filter((p) => {
        try { new RegExp(`^(?:${p})$`, "v"); return false; } catch (e) { return true; } })""", sorted(patterns))
    assert broken == []


def test_the_project_name_is_checked_in_the_browser(hub, page):
    login(page, hub)
    page.goto(f"{hub.url}/hub/home")
    name = page.locator("#new-project-name")
    for value, valid in (("text-classify", True), ("Bad_Name", False), ("ends-with-", False)):
        name.fill(value)
        assert name.evaluate("(input) => input.checkValidity()") is valid, value


def new_project_with_code(page, hub, name: str, source: str, log_in: bool = True) -> None:
    """The Projects page: a name, the python env and a way to bring code in, which opens the library's page."""
    if log_in:
        login(page, hub)
    page.goto(f"{hub.url}/hub/home")
    page.fill("#new-project-name", name)
    page.select_option("#new-project-env", "python")
    page.select_option("#new-project-code", source)
    page.click("#new-project-create")
    page.wait_for_url(f"**/services/library/projects/new?name={name}**")
    assert page.inner_text("#project-name") == name


def test_a_new_project_starts_with_a_sample_chosen_on_the_page(hub, page):
    """Manual 2.6.1-2.6.2, the recommended way: a sample's train and api folders are in /project/code when
    JupyterLab opens."""
    new_project_with_code(page, hub, "with-sample", "sample")
    assert page.input_value("#sample") == "text-classify-bayes"  # the python env's sample is offered first
    shot(page, "02-projects-code-sample")
    page.click("#create")
    page.wait_for_url("**/user/admin/with-sample/lab**", timeout=120_000)
    page.wait_for_selector(".jp-DirListing-itemName:has-text('code')", timeout=120_000)
    page.dblclick(".jp-DirListing-itemName:has-text('code')")
    page.wait_for_selector(".jp-DirListing-itemName:has-text('text-classify-bayes-train-demo')")
    shot(page, "04-jupyterlab-sample")
    code = hub.data_root / "users" / user_dir_name("admin") / "with-sample" / "code"
    assert (code / "text-classify-bayes-api-demo" / "algorithm.yaml").is_file()
    hub.stop_project("admin", "with-sample", remove=True)


def test_a_new_project_starts_from_an_uploaded_zip_with_its_progress(hub, page, tmp_path):
    archive = tmp_path / "mine.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("my-algorithm/src/train.py", "print('mine')\n")
    new_project_with_code(page, hub, "with-zip", "archive")
    page.set_input_files("#archive", str(archive))
    page.click("#create")
    page.wait_for_url("**/user/admin/with-zip/**", timeout=120_000)
    code = hub.data_root / "users" / user_dir_name("admin") / "with-zip" / "code"
    assert (code / "my-algorithm" / "src" / "train.py").read_text() == "print('mine')\n"
    hub.wait_ready("admin", "with-zip")
    hub.stop_project("admin", "with-zip", remove=True)


def test_the_generator_on_the_page_names_its_rule_and_an_existing_project_is_left_alone(hub, page):
    new_project_with_code(page, hub, "with-generator", "generator")
    page.fill("#prefix", "news")
    page.fill("#interface", "health")  # reserved by the inference contract
    page.click("#create")
    page.wait_for_selector("#flash:has-text('interface: a lowercase English identifier')")
    shot(page, "02-projects-code-generator-refused")
    assert hub.server("admin", "with-generator") is None
    # an existing project takes its code from its terminal, never from this page
    (hub.data_root / "users" / user_dir_name("admin") / "kept" / "code").mkdir(parents=True)
    (hub.data_root / "users" / user_dir_name("admin") / "kept" / "code" / "mine.py").write_text("x = 1\n")
    new_project_with_code(page, hub, "kept", "sample", log_in=False)
    page.click("#create")
    page.wait_for_selector("#flash:has-text('you already have a project named')")
    assert (hub.data_root / "users" / user_dir_name("admin") / "kept" / "code" / "mine.py").read_text() == "x = 1\n"
