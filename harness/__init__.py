"""What the tests and the benchmarks share: a hub subprocess, the library in-process, image tars, waiting.

Not part of the product (``pyproject.toml`` packages ``workspace_hub`` and
``workspace_library`` only).  Tests import it through pytest's root, and the
benchmarks put the repository root on ``sys.path``.
"""
