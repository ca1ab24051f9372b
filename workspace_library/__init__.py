"""The library: the algorithm library and the base-environment library behind the hub.

A hub-managed JupyterHub service (``python -m workspace_library``).  Users
reach it through hub OAuth in the browser and through hub API tokens from the
API, ``ws publish`` and ``ws algorithms``.  Image tars are stored
content-addressed under the data root, checked with
:func:`workspace_hub.validate.check_tar` and a sandboxed smoke run, and loaded
into the Docker engine under platform tags.

Modules: :mod:`.models` (tables), :mod:`.db` (Alembic migrations),
:mod:`.library` (rules: visibility, ownership, status), :mod:`.store`
(content-addressed tars), :mod:`.jobs` (validation, loading, pulls),
:mod:`.api` and :mod:`.pages` (tornado handlers), :mod:`.app` (the service).
"""
