"""The env exports that benchmarks and tests need, prepared when a fresh checkout has none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from workspace_hub.catalog import REPO_ROOT


def base_image_export(env: str = "python") -> Path:
    """The env's ``docker save`` export that ``ws build`` reads (``data/base-images/<env>/current``), built
    with ``ws envs build`` (and a local wheel folder, where there is one) if it was never exported."""
    export = REPO_ROOT / "data" / "base-images" / env / "current"
    if not export.exists():
        wheels = ["--wheels", "/opt/wheels"] if Path("/opt/wheels").is_dir() else []
        print(f"{export} is missing: building the {env} env first (ws envs build {env})", flush=True)
        subprocess.run([str(Path(sys.executable).with_name("ws")), "envs", "build", env, *wheels], check=True)
    return export


def preset_algorithms() -> Path:
    """``data/preset-algorithms``, as ``ws up --envs python,pytorch`` builds it (the envs first, if missing)."""
    from workspace_hub.presets import FOLDER, PRESETS, build_presets

    for env in sorted({preset.env for preset in PRESETS}):
        base_image_export(env)
    build_presets(REPO_ROOT / "data", log=lambda m: print(m, flush=True))
    return REPO_ROOT / "data" / FOLDER
