"""Workspace Hub: AI development workspaces on JupyterHub."""

__version__ = "0.1.0"
