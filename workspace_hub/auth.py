"""The hub's default authenticator: NativeAuthenticator with a first admin.

NativeAuthenticator keeps users and bcrypt password hashes in the hub database;
users sign up at ``/hub/signup`` and an admin authorizes them at
``/hub/authorize``.  This subclass only adds the first admin account, so that a
fresh hub is never open: its password comes from ``$WSHUB_ADMIN_PASSWORD`` or
is generated and printed once.

Passwords have at least 8 characters, and five failed logins in a row lock an
account for ten minutes (NativeAuthenticator's own options, set here).

NativeAuthenticator 1.3.0's own ``/login`` handler fails on JupyterHub 6
(it uses the removed ``statsd`` attribute), so this subclass keeps JupyterHub's
login page, which calls the same ``authenticate``, and adds to it what
NativeAuthenticator's page said: a link to sign up, and, to whoever gives the
right password of an account not yet approved, that approval is pending
(everyone else still reads "Invalid username or password", so the page tells a
stranger nothing about which accounts exist).  The signup, authorize and
change-password pages stay NativeAuthenticator's.
"""

from __future__ import annotations

import asyncio
import os
import secrets

from jupyterhub.handlers.login import LoginHandler
from nativeauthenticator import NativeAuthenticator
from traitlets import Unicode, default

PENDING = ("Your account is waiting for an admin's approval: you can sign in once an admin has authorized it "
           "(ask your hub's admin).")


class WorkspaceLoginHandler(LoginHandler):
    """JupyterHub's login page; a refused login of an account waiting for approval says so."""

    def _render(self, login_error=None, username=None, **kwargs):
        if login_error and getattr(self, "pending_approval", False):
            login_error = PENDING
        return super()._render(login_error=login_error, username=username, **kwargs)


class WorkspaceAuthenticator(NativeAuthenticator):
    """NativeAuthenticator that creates the first admin on start."""

    first_admin = Unicode(
        "admin", config=True, help="Name of the admin account created on the first start."
    )

    first_admin_password = Unicode(
        config=True,
        help="""Password of the first admin.  Defaults to $WSHUB_ADMIN_PASSWORD;
        when that is unset too, a random password is generated and printed once.""",
    )

    @default("first_admin_password")
    def _default_first_admin_password(self):
        return os.environ.get("WSHUB_ADMIN_PASSWORD", "")

    @default("minimum_password_length")
    def _default_minimum_password_length(self):
        return 8

    @default("allowed_failed_logins")
    def _default_allowed_failed_logins(self):
        return 5  # then the account waits seconds_before_next_try (NativeAuthenticator's 600 s)

    @default("admin_users")
    def _default_admin_users(self):
        return {self.first_admin}

    def get_handlers(self, app):
        return [(route, WorkspaceLoginHandler if route == r"/login" else handler)
                for route, handler in super().get_handlers(app)]

    async def authenticate(self, handler, data):
        username = self.normalize_username(data.get("username", ""))
        blocked = bool(self.allowed_failed_logins) and self.is_blocked(username)
        name = await super().authenticate(handler, data)
        if name is None and not blocked:  # a locked account is not told whether the password was right
            user = self.get_user(username)
            if user is not None and not user.is_authorized:
                handler.pending_approval = await asyncio.to_thread(user.is_valid_password, data.get("password", ""))
        return name

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.admin_users.add(self.first_admin)
        if not self.user_exists(self.first_admin):
            password = self.first_admin_password or secrets.token_urlsafe(12)
            self.create_user(self.first_admin, password)
            if not self.first_admin_password:
                print(
                    f"\n  Workspace Hub: first admin created.\n"
                    f"    user:     {self.first_admin}\n"
                    f"    password: {password}\n"
                    f"  This password is shown only once; change it at /hub/change-password.\n",
                    flush=True,
                )
