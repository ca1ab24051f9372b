"""Check an image tar against the handbook's contract, in one streaming pass.

``check_tar(path)`` reads the archive once, never extracts and never writes:
every regular member is hashed as it streams by; members that are tar layers
(plain, gzip or zstd) are also decompressed, hashed for their diff_id and
scanned header by header for unsafe entries.  JSON members up to a bound are
kept in memory, and the manifest, config and digests are checked at the end,
so the order of members (``docker save`` writes ``manifest.json`` last) does
not matter.  Every violation becomes a :class:`Problem` with a stable code.

No library does this: ``docker load`` checks far less (it accepts configs that
do not match their digest and layers with ``../`` entries), and ``tarfile`` has
no bounds for hostile input (see :mod:`workspace_hub.tarstream`).
"""

from __future__ import annotations

import json
import posixpath
import re
import tarfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from .contract import LABEL_DEVICE, LABEL_KIND, LABEL_PORT, TAR_NAME, TAR_NAME_RULE
from .tarstream import (
    BLOCK, DEVICE_TYPES, DIRECTORY, HARDLINK, REGULAR, SYMLINK, Budget, Decompressor,
    HashingReader, Prepended, SizeLimitExceeded, TarFormatError, TarReader, looks_like_tar,
)

DIGEST_IN_NAME = re.compile(r"(?:^|/)(?:blobs/sha256/)?([0-9a-f]{64})(?:\.json)?$")
DEFAULT_MAX_UNCOMPRESSED = 20 * 1024**3
DEFAULT_ARCHITECTURES = ("amd64",)
MAX_MANIFEST = 1024**2
MAX_JSON = 4 * 1024**2
MAX_KEPT_JSON = 16 * 1024**2
MAX_OUTER_ENTRIES = 10_000
MAX_LAYER_ENTRIES = 5_000_000
MAX_PROBLEMS_PER_LAYER = 20
MAX_SYMLINK_HOPS = 8
MAX_JSON_DEPTH = 64


@dataclass
class Problem:
    code: str
    message: str
    path: str | None = None


@dataclass
class Blob:
    """One regular member of the outer archive, as seen while streaming."""

    path: str
    sha256: str
    size: int
    diff_id: str | None = None  # set when the member is a tar layer
    compression: str | None = None
    text: bytes | None = None  # kept when it may be JSON


@dataclass
class Report:
    valid: bool = False
    kind: str | None = None
    name: str | None = None
    device: str | None = None
    image: dict = field(default_factory=dict)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def bounded_json(text: bytes | str, max_depth: int = MAX_JSON_DEPTH):
    """``json.loads`` that raises ValueError, never RecursionError, for documents nested past *max_depth*."""
    try:
        document = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested more than {max_depth} levels deep") from None
    level, depth = [document], 0
    while level:
        depth += 1
        if depth > max_depth:
            raise ValueError(f"nested more than {max_depth} levels deep")
        level = [child for node in level if isinstance(node, (dict, list))
                 for child in (node.values() if isinstance(node, dict) else node)]
    return document


def _read_head(reader) -> bytes:
    """The first block of a stream (fewer bytes only at its end)."""
    head = reader.read(BLOCK)
    while len(head) < BLOCK and (more := reader.read(BLOCK - len(head))):
        head += more
    return head


def _normalise(name: str) -> str:
    """The name a reader that cleans paths (Go's ``docker load``) sees: ``././a//b/`` is ``a/b``."""
    name = posixpath.normpath(name) if name not in ("", ".") else "."
    return name[1:] if name.startswith("//") else name


def _unsafe(name: str) -> str | None:
    if name.startswith("/"):
        return "an absolute name"
    if ".." in name.split("/"):
        return "a '..' component"
    return None


class _Check:
    """State of one check; see :func:`check_tar`."""

    def __init__(self, path: Path, max_uncompressed: int, architectures: tuple[str, ...], base_env: bool):
        self.path = path
        self.base_env = base_env
        self.budget = Budget(max_uncompressed)
        self.architectures = architectures
        self.report = Report()
        self.blobs: dict[str, Blob] = {}
        self.symlinks: dict[str, str] = {}
        self.kept_json = 0
        self.layer_entries = 0

    def error(self, code: str, message: str, path: str | None = None) -> None:
        self.report.errors.append(Problem(code, message, path))

    def warn(self, code: str, message: str, path: str | None = None) -> None:
        self.report.warnings.append(Problem(code, message, path))

    # -- the streaming pass ----------------------------------------------------

    def read_archive(self) -> None:
        with open(self.path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            stream = Decompressor(f, "gzip") if Decompressor.kind_of(head) == "gzip" else f
            outer = HashingReader(stream, self.budget, hash=False)  # members are hashed one by one
            seen: set[str] = set()
            for entry, data in TarReader(outer, max_entries=MAX_OUTER_ENTRIES):
                if entry.sparse:
                    self.error("outer-sparse", f"archive member {entry.name!r} uses GNU sparse headers, which "
                               "readers disagree on; save the image again without them", entry.name)
                    continue
                name = _normalise(entry.name)
                if name == ".":
                    continue
                if reason := _unsafe(entry.name) or _unsafe(name):
                    self.error("outer-unsafe-path", f"archive member {name!r} has {reason}; "
                               "image tars must use relative names inside the archive", name)
                    continue
                if name in seen:
                    self.error("outer-duplicate", f"archive member {name!r} appears twice; "
                               "write each file once (use `ws build` or `docker save`)", name)
                    continue
                seen.add(name)
                if entry.type == SYMLINK:
                    self.symlinks[name] = entry.linkname
                elif entry.type == REGULAR:
                    self.read_member(name, entry.size, data)
                elif entry.type != DIRECTORY:
                    self.error("outer-member-type", f"archive member {name!r} is not a file, folder or "
                               "symlink; image tars hold only those", name)
            outer.drain()  # what follows the end marker: padding, or a second gzip member (refused)

    def read_member(self, name: str, size: int, data) -> None:
        raw = HashingReader(data)
        head = _read_head(raw)
        blob = Blob(path=name, sha256="", size=size)
        compression = Decompressor.kind_of(head)
        plain_tar = not compression and looks_like_tar(head)
        if compression:
            unpacked = HashingReader(Decompressor(Prepended(head, raw), compression), self.budget)
            inner_head = _read_head(unpacked)
            if looks_like_tar(inner_head):
                blob.compression = compression
                self.scan_layer(name, Prepended(inner_head, unpacked))
                unpacked.drain()
                blob.diff_id = "sha256:" + unpacked.sha256.hexdigest()
        elif plain_tar:
            self.scan_layer(name, Prepended(head, raw))
        elif size <= MAX_JSON and head.lstrip()[:1] in (b"{", b"[") and self.kept_json + size <= MAX_KEPT_JSON:
            blob.text = head + raw.read(size)
            self.kept_json += size
        raw.drain()
        blob.sha256 = "sha256:" + raw.sha256.hexdigest()
        if plain_tar:
            blob.diff_id = blob.sha256
        self.blobs[name] = blob

    def scan_layer(self, layer: str, stream) -> None:
        """Check every entry of one layer; the stream is read to its end-of-archive marker."""
        problems = 0

        def problem(code, message, entry_name):
            nonlocal problems
            problems += 1
            if problems <= MAX_PROBLEMS_PER_LAYER:
                self.error(code, message, f"{layer}:{entry_name}")

        reader = TarReader(stream, max_entries=MAX_LAYER_ENTRIES - self.layer_entries)
        try:
            for entry, _ in reader:
                name = entry.name[2:] if entry.name.startswith("./") else entry.name
                if entry.sparse:
                    problem("layer-sparse", f"layer entry {name!r} uses GNU sparse headers, which readers "
                            "disagree on; rebuild the image", name)
                if reason := _unsafe(name):
                    problem("layer-unsafe-path", f"layer entry {name!r} has {reason}; a layer may only "
                            "hold relative paths (rebuild the image from a clean context)", name)
                if entry.type == HARDLINK:
                    target = posixpath.normpath(entry.linkname or ".")
                    if target.startswith("/") or target == ".." or target.startswith("../"):
                        problem("layer-hardlink-escape", f"hard link {name!r} points at {entry.linkname!r}, "
                                "outside the image; hard links must stay inside the layer", name)
                if entry.type in DEVICE_TYPES and not (name + "/").startswith("dev/"):
                    problem("layer-device", f"{name!r} is a device node or fifo outside /dev; remove it "
                            "from the image", name)
        except SizeLimitExceeded:
            raise
        except TarFormatError as e:
            self.error("layer-corrupt", f"layer {layer} is not a readable tar ({e}); rebuild the image", layer)
        finally:
            self.layer_entries += reader.entries
        if problems > MAX_PROBLEMS_PER_LAYER:
            self.warn("layer-problems-truncated",
                      f"{problems - MAX_PROBLEMS_PER_LAYER} more problems in {layer} were not listed", layer)

    # -- the checks at the end -------------------------------------------------

    def resolve(self, path: str) -> Blob | None:
        """The blob at *path*, following in-archive symlinks between blobs only."""
        for _ in range(MAX_SYMLINK_HOPS):
            if path in self.blobs:
                return self.blobs[path]
            if path not in self.symlinks:
                return None
            target = self.symlinks[path]
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            if target.startswith("/") or resolved.startswith("../") or resolved == "..":
                self.error("outer-bad-symlink", f"symlink {path!r} points outside the archive "
                           f"({target!r}); symlinks may only link blobs inside it", path)
                return None
            path = resolved
        self.error("outer-bad-symlink", f"symlink chain at {path!r} is longer than {MAX_SYMLINK_HOPS}", path)
        return None

    def json_blob(self, path: str, what: str, limit: int = MAX_JSON):
        blob = self.resolve(path)
        if blob is None:
            self.error("missing-path", f"{what} {path!r} is referenced but not in the archive; "
                       "the tar is incomplete, save it again", path)
            return None
        if blob.text is None:
            code = "json-too-large" if blob.size > limit else f"{what.split()[0]}-invalid"
            self.error(code, f"{what} {path!r} is not JSON of at most {limit} bytes", path)
            return None
        try:
            return bounded_json(blob.text)
        except ValueError as e:
            self.error(f"{what.split()[0]}-invalid", f"{what} {path!r} is not valid JSON ({e})", path)
            return None

    def image_description(self) -> tuple[str, list[str], list[str]] | None:
        """(config path, layer paths, repo tags) from manifest.json, or from an OCI index."""
        manifest = self.blobs.get("manifest.json")
        if manifest is not None or "index.json" not in self.blobs:
            if manifest is None:
                self.error("manifest-missing", "manifest.json is missing; this is not a `docker save` "
                           "or `ws build` image tar")
                return None
            if manifest.size > MAX_MANIFEST:
                self.error("manifest-too-large", f"manifest.json is {manifest.size} bytes; the limit is "
                           f"{MAX_MANIFEST}", "manifest.json")
                return None
            images = self.json_blob("manifest.json", "manifest", MAX_MANIFEST)
            if images is None:
                return None
            if not isinstance(images, list) or len(images) != 1 or not isinstance(images[0], dict):
                self.error("manifest-image-count", "manifest.json must describe exactly one image; save "
                           "one image per tar", "manifest.json")
                return None
            image = images[0]
            config, layers, tags = image.get("Config"), image.get("Layers"), image.get("RepoTags") or []
            if not isinstance(config, str) or not isinstance(layers, list) or not all(
                    isinstance(x, str) for x in layers) or not isinstance(tags, list):
                self.error("manifest-invalid", "manifest.json needs a Config path and a Layers list",
                           "manifest.json")
                return None
            return config, layers, [str(t) for t in tags]
        index = self.json_blob("index.json", "index")
        try:
            [descriptor] = index["manifests"]
            oci = self.json_blob(_blob_path(descriptor["digest"]), "manifest")
            return (_blob_path(oci["config"]["digest"]),
                    [_blob_path(layer["digest"]) for layer in oci["layers"]],
                    [descriptor.get("annotations", {}).get("org.opencontainers.image.ref.name", "")])
        except (TypeError, KeyError, ValueError):
            if not self.report.errors:
                self.error("manifest-image-count", "index.json must point at exactly one image manifest "
                           "with a config and layers", "index.json")
            return None

    def check_digest_name(self, blob: Blob, code: str) -> None:
        match = DIGEST_IN_NAME.search(blob.path)
        if match and "sha256:" + match.group(1) != blob.sha256:
            self.error(code, f"{blob.path} hashes to {blob.sha256}, not the digest in its name; "
                       "the file was altered after saving, save the image again", blob.path)

    def check_image(self) -> None:
        described = self.image_description()
        if described is None:
            return
        config_path, layer_paths, tags = described
        config_blob = self.resolve(config_path)
        config = self.json_blob(config_path, "config")
        if config_blob is None or config is None:
            return
        if not DIGEST_IN_NAME.search(config_blob.path):
            self.error("config-digest", f"config {config_blob.path!r} is not named by its digest, so it "
                       "cannot be verified", config_blob.path)
        self.check_digest_name(config_blob, "config-digest")
        if not isinstance(config, dict):
            self.error("config-invalid", "the image config must be a JSON object", config_path)
            return
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(layer_paths):
            self.error("layer-count", f"the manifest lists {len(layer_paths)} layers but the config has "
                       f"{len(diff_ids)} diff_ids; save the image again", config_path)
        layers = []
        for index, path in enumerate(layer_paths):
            blob = self.resolve(path)
            if blob is None:
                self.error("missing-path", f"layer {path!r} is referenced but not in the archive", path)
                continue
            if blob.diff_id is None:
                self.error("layer-not-tar", f"layer {path!r} is not a tar (plain, gzip or zstd)", path)
                continue
            self.check_digest_name(blob, "blob-digest")
            expected = diff_ids[index] if index < len(diff_ids) else None
            if expected is not None and expected != blob.diff_id:
                self.error("layer-digest", f"layer {index} ({path}) hashes to {blob.diff_id}, but the config "
                           f"expects {expected}; the layer or config was altered", path)
            layers.append({"path": path, "blob": blob.path, "sha256": blob.sha256, "diff_id": blob.diff_id,
                           "size": blob.size, "compression": blob.compression})
        self.describe(config, config_blob, layers, tags)
        self.check_config(config, config_path)

    def describe(self, config: dict, config_blob: Blob, layers: list, tags: list) -> None:
        settings = config.get("config") or {}
        self.report.image = {
            "config_digest": config_blob.sha256,
            "config_blob": config_blob.path,
            "layers": layers,
            "size": self.path.stat().st_size,
            "cmd": settings.get("Cmd"),
            "entrypoint": settings.get("Entrypoint"),
            "env": settings.get("Env") or [],
            "labels": settings.get("Labels") or {},
            "repo_tags": tags,
        }

    def check_config(self, config: dict, path: str) -> None:
        settings = config.get("config") or {}
        if not isinstance(settings, dict):
            self.error("config-invalid", "the config's 'config' section must be an object", path)
            return
        if config.get("os") != "linux":
            self.error("config-os", f"os is {config.get('os')!r}; images must be built for linux", path)
        if config.get("architecture") not in self.architectures:
            self.error("config-arch", f"architecture is {config.get('architecture')!r}; this platform runs "
                       f"{', '.join(self.architectures)}", path)
        if not (settings.get("Cmd") or settings.get("Entrypoint")):
            self.error("config-no-command", "the image has no Cmd or Entrypoint; set `command` in "
                       "algorithm.yaml (or CMD in a Dockerfile)", path)
        labels = settings.get("Labels") or {}
        if self.base_env:
            return
        for label, expected in ((LABEL_KIND, self.report.kind), (LABEL_DEVICE, self.report.device)):
            if label not in labels:
                self.error("label-missing", f"label {label} is missing; `ws build` writes it, or add "
                           f"LABEL {label}={expected or '...'}", path)
            elif expected and labels[label] != expected:
                self.error("label-mismatch", f"label {label} is {labels[label]!r} but the file name says "
                           f"{expected!r}; rename the file or rebuild", path)
        if (self.report.kind or labels.get(LABEL_KIND)) == "predict":
            ports = list(settings.get("ExposedPorts") or {})
            if LABEL_PORT not in labels and len(ports) != 1:
                self.error("port-missing", f"a predict image must declare {LABEL_PORT} or EXPOSE exactly one "
                           f"port (it exposes {len(ports)})", path)


def _blob_path(digest: str) -> str:
    algorithm, _, hexdigest = str(digest).partition(":")
    if algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
        raise ValueError(digest)
    return f"blobs/sha256/{hexdigest}"


def check_tar(path: str | Path, max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
              architectures: tuple[str, ...] = DEFAULT_ARCHITECTURES, filename: str | None = None,
              base_env: bool = False) -> Report:
    """Check the image tar at *path*; raises OSError only when it cannot be opened.

    *filename* is the name the naming rule applies to (default: the file's own
    name; the library stores tars under their digest).  A *base_env*
    image follows the image rules but not the algorithm naming and label rules.
    """
    path = Path(path)
    filename = filename or path.name
    check = _Check(path, max_uncompressed, architectures, base_env)
    report = check.report
    match = TAR_NAME.match(filename)
    if match:
        report.kind, report.name, report.device = match.groups()
    elif not base_env:
        check.error("filename", f"{filename!r} does not follow the naming rule {TAR_NAME_RULE}", filename)
    try:
        check.read_archive()  # an unreadable path raises OSError here, before any verdict
        check.check_image()
    except SizeLimitExceeded:
        check.error("size-limit", f"the image passes {max_uncompressed} bytes uncompressed; raise "
                    "--max-uncompressed-size if it is really that large")
    except TarFormatError as e:
        check.error("not-a-tar", f"{filename} is not a readable tar archive ({e})")
    report.valid = not report.errors
    return report


def validated_archive(path: str | Path, report: Report) -> Iterator[bytes]:
    """The image that *report* describes, re-serialised from the members the check hashed.

    What the engine loads is this stream, not the uploaded file: one config and
    the layers, each under a name of our own, their bytes checked again against
    the digests the report recorded, and a manifest of our own with no
    ``RepoTags``, so no name, alias, annotation or trailing data in the upload
    reaches ``docker load``, and loading creates or moves no tag.
    """
    image = report.image
    if not report.valid or "config_blob" not in image:
        raise ValueError("only a valid report describes an image to load")
    config_name = image["config_digest"].split(":", 1)[1] + ".json"
    wanted = {image["config_blob"]: (config_name, image["config_digest"])}
    for layer in image["layers"]:
        wanted.setdefault(layer["blob"], (f"{layer['sha256'].split(':', 1)[1]}/layer.tar", layer["sha256"]))
    manifest = json.dumps([{"Config": config_name, "RepoTags": None,
                            "Layers": [wanted[layer["blob"]][0] for layer in image["layers"]]}]).encode()
    with open(path, "rb") as f:
        head = f.read(2)
        f.seek(0)
        stream = Decompressor(f, "gzip") if Decompressor.kind_of(head) == "gzip" else f
        for entry, data in TarReader(stream, max_entries=MAX_OUTER_ENTRIES):
            name = _normalise(entry.name)
            if entry.type != REGULAR or name not in wanted:
                continue
            target, digest = wanted.pop(name)
            yield _header(target, entry.size)
            hashed = HashingReader(data)
            while chunk := hashed.read():
                yield chunk
            if "sha256:" + hashed.sha256.hexdigest() != digest:
                raise TarFormatError(f"{name} changed since it was checked")
            yield b"\0" * (-entry.size % BLOCK)
    if wanted:
        raise TarFormatError(f"{', '.join(wanted)} disappeared since the check")
    yield _header("manifest.json", len(manifest)) + manifest + b"\0" * (-len(manifest) % BLOCK)
    yield b"\0" * (2 * BLOCK)


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info.tobuf(format=tarfile.GNU_FORMAT)
