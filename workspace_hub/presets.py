"""The preset algorithms (manual 2.2.6): three samples, built by ``ws up`` so that a fresh hub can train at once.

Each preset is one of :data:`~workspace_hub.scaffold.SAMPLES`, baked from the
templates and packed with :func:`~workspace_hub.imagebuild.build_image` (what
``ws build`` does in a workspace) from its env's export, into
``<data root>/preset-algorithms/<name>/``, again whenever the templates or the
env change.  The library seeds what it finds
there as platform-owned, preset algorithms, validated like any upload and
online once they pass (:mod:`workspace_library.algorithms.presets`); a preset
whose env is not built is listed with the command that builds it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .contract import TAR_NAME
from .envbuild import EXPORT_DIR
from .errors import WorkspaceHubError
from .imagebuild import build_image
from .scaffold import SAMPLES, new_sample, templates_dir

FOLDER = "preset-algorithms"
STAMP = "built-from"  # the digest of the templates and the env export a preset was built from


@dataclass(frozen=True)
class PresetAlgorithm:
    name: str  # a sample of SAMPLES; the algorithm is published under this name
    dataset: str  # the preset dataset it trains on (workspace_library.datasets.presets)

    @property
    def env(self) -> str:
        return SAMPLES[self.name].env

    @property
    def build_command(self) -> str:
        return f"ws up --envs python,{self.env}" if self.env != "python" else "ws up"


PRESETS = (
    PresetAlgorithm("text-classify-bayes", "news-texts"),
    PresetAlgorithm("image-classify-torch", "digits"),
    PresetAlgorithm("object-detect-torch", "shapes"),
)


def preset_tars(data_root: Path, preset: PresetAlgorithm) -> dict[str, Path]:
    """The ``{role: tar}`` built for *preset* under *data_root* (empty until both roles are built)."""
    folder = Path(data_root) / FOLDER / preset.name
    found = {m.group(1): path for path in (sorted(folder.iterdir()) if folder.is_dir() else [])
             if (m := TAR_NAME.match(path.name)) and m.group(2) == preset.name and path.is_file()}
    return found if set(found) == {"train", "predict"} else {}


def _inputs(base: Path) -> str:
    """A digest of what a preset is built from: the templates and the env's export (its image config)."""
    digest = hashlib.sha256()
    root = templates_dir()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(f"{path.relative_to(root)}\0".encode() + path.read_bytes() + b"\0")
    digest.update((base / "manifest.json").read_bytes())
    return digest.hexdigest()


def build_presets(data_root: Path, log: Callable[[str], None] = print) -> list[str]:
    """Build the tars of each preset whose env is exported under *data_root*, unless they were built from the
    same templates and env export already.

    Returns the names built.  A preset is written to a partial folder and moved into place whole, so an
    interrupted build is started again, never seeded half-built; one that fails is logged and skipped."""
    data_root = Path(data_root)
    built = []
    for preset in PRESETS:
        base = data_root / EXPORT_DIR / preset.env / "current"
        if not (base / "manifest.json").is_file():
            if not preset_tars(data_root, preset):
                log(f"preset algorithm {preset.name}: the {preset.env} env is not built (`{preset.build_command}`)")
            continue
        target = data_root / FOLDER / preset.name
        inputs = _inputs(base)
        if preset_tars(data_root, preset) and (target / STAMP).is_file() and (target / STAMP).read_text() == inputs:
            continue
        partial = target.with_name(f".{preset.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        log(f"preset algorithm {preset.name}: building its train and predict images from the sample")
        try:
            with tempfile.TemporaryDirectory(prefix="ws-preset-") as tmp:
                for folder in new_sample(preset.name, output_dir=Path(tmp)):
                    # the samples pin what their env has, so in a workspace pip adds nothing; here, outside the
                    # env, it would pack the env's packages (torch: 880 MB) a second time
                    (folder / "requirements.txt").unlink(missing_ok=True)
                    build_image(folder, output_dir=partial, base=base, log=lambda _m: None)
        except WorkspaceHubError as e:  # the hub starts without this preset; the next `ws up` tries again
            shutil.rmtree(partial, ignore_errors=True)
            log(f"preset algorithm {preset.name} was not built: {e}")
            continue
        (partial / STAMP).write_text(inputs)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
        built.append(preset.name)
    return built
