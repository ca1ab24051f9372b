"""The library: algorithms, base envs, datasets, training runs, models and inference services behind the hub.

A hub-managed JupyterHub service (``python -m workspace_library``).  Users
reach it through hub OAuth in the browser and through hub API tokens from the
API and ``ws``.  The layout and the words it uses are in this folder's README:
:mod:`.app` composes the resources (``algorithms``, ``envs``, ``datasets``,
``runs``, ``registry``, ``services``) over the shared base (:mod:`.base`,
:mod:`.access`, :mod:`.quota`, :mod:`.rules`, :mod:`.items`, :mod:`.models`,
:mod:`.store`).
"""
