"""Workspace Hub's JupyterHub configuration.

Run with ``jupyterhub -f hub_config/jupyterhub_config.py`` (``ws up`` does).
The embedded defaults, and the environment variables that tune them, are
documented in ``workspace_hub/hubconfig.py``.  Put site overrides below.
"""

from workspace_hub.hubconfig import configure

c = get_config()  # noqa: F821
configure(c)

# Site overrides, for example:
# c.WorkspaceMixin.limit_overrides = {"*": {"mem": "8G", "cpu": 4}}
# c.JupyterHub.authenticator_class = "oauthenticator.GitHubOAuthenticator"
