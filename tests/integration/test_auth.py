"""Users: the hub is never open; people sign up, an admin authorizes them, then they log in.

NativeAuthenticator's pages on a real JupyterHub 6 (local profile: no Docker needed).
"""

import pytest
import requests

from harness.hubprocess import HubProcess

from .conftest import ARTIFACTS


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    data_root = tmp_path_factory.mktemp("auth") / "data"
    data_root.mkdir()
    hub = HubProcess(data_root, port=18700, log_path=ARTIFACTS / "hub-auth.log", env={"WSHUB_PROFILE": "local"})
    hub.start()
    yield hub
    hub.stop()


def browser(hub) -> requests.Session:
    session = requests.Session()
    session.get(f"{hub.url}/hub/login")
    return session


def logged_in(session, hub) -> bool:
    return session.get(f"{hub.url}/hub/home", allow_redirects=False).status_code == 200


def test_signup_then_admin_authorization_then_login(hub):
    session = browser(hub)
    r = session.post(f"{hub.url}/hub/signup", data={
        "username": "gina", "signup_password": "a-long-passphrase-1",
        "signup_password_confirmation": "a-long-passphrase-1", "_xsrf": session.cookies.get("_xsrf")})
    assert "sent to the admin" in r.text
    assert not logged_in(hub.login("gina", "a-long-passphrase-1"), hub), "not authorized yet"

    admin = hub.login("admin", hub.admin_password)
    assert logged_in(admin, hub)
    assert "gina" in admin.get(f"{hub.url}/hub/authorize").text
    admin.get(f"{hub.url}/hub/authorize/gina")

    assert logged_in(hub.login("gina", "a-long-passphrase-1"), hub)


def login_page_after(hub, username: str, password: str) -> str:
    session = browser(hub)
    r = session.post(f"{hub.url}/hub/login", timeout=30, data={
        "username": username, "password": password, "_xsrf": session.cookies.get("_xsrf")})
    assert r.status_code == 403
    return r.text


def test_an_account_waiting_for_approval_is_told_so_and_the_login_page_links_to_sign_up(hub):
    """Issue 25, bug 6: a signed-up user not yet approved read "Invalid username or password", and the login
    page had no link to sign up.  Only the right password learns that approval is pending."""
    assert 'href="/hub/signup"' in browser(hub).get(f"{hub.url}/hub/login").text
    session = browser(hub)
    session.post(f"{hub.url}/hub/signup", data={
        "username": "pia", "signup_password": "a-long-passphrase-3",
        "signup_password_confirmation": "a-long-passphrase-3", "_xsrf": session.cookies.get("_xsrf")})
    assert "waiting for an admin&#39;s approval" in login_page_after(hub, "pia", "a-long-passphrase-3")
    for username, password in (("pia", "not-her-passphrase"), ("nobody-here", "a-long-passphrase-3")):
        text = login_page_after(hub, username, password)
        assert "Invalid username or password" in text and "approval" not in text


def test_a_wrong_password_does_not_log_in(hub):
    assert not logged_in(hub.login("admin", "wrong"), hub)


def test_the_authorization_area_is_for_admins_only(hub):
    assert browser(hub).get(f"{hub.url}/hub/authorize").status_code == 403


def test_a_short_password_is_refused_at_signup(hub):
    session = browser(hub)
    r = session.post(f"{hub.url}/hub/signup", data={
        "username": "hank", "signup_password": "short7!", "signup_password_confirmation": "short7!",
        "_xsrf": session.cookies.get("_xsrf")})
    assert "at least 8" in r.text
    assert "sent to the admin" not in r.text


def test_repeated_failures_lock_the_account_even_against_the_right_password(hub):
    session = browser(hub)
    session.post(f"{hub.url}/hub/signup", data={
        "username": "ivan", "signup_password": "a-long-passphrase-2",
        "signup_password_confirmation": "a-long-passphrase-2", "_xsrf": session.cookies.get("_xsrf")})
    hub.login("admin", hub.admin_password).get(f"{hub.url}/hub/authorize/ivan")
    for _ in range(5):
        assert not logged_in(hub.login("ivan", "not-his-password"), hub)
    assert not logged_in(hub.login("ivan", "a-long-passphrase-2"), hub), "five failures must lock the account"
