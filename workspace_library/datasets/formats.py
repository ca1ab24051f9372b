"""The four dataset formats, one validator each (the handbook's section 10 describes them to users).

A validator reads one split (the members :mod:`.archive` extracted) and
returns a :class:`Report`: problems with stable codes naming the file and line,
counts per class (or label, or entity type), and a few sample names.  It never
raises: unreadable content is a problem like any other.

``dir``          ``<class>/<file>``, text or images            dir-file-at-root, dir-nested, dir-empty-class,
                                                               dir-one-class, dir-unknown-file
``json``         ``annotations.json`` (a COCO subset) + images json-syntax, json-schema, json-duplicate-id,
                                                               json-unknown-image, json-unknown-category,
                                                               json-image-missing, json-image-size,
                                                               json-box-outside-image, json-files
``single_text``  one UTF-8 file, ``label<TAB>text`` a line     text-files, text-encoding, text-no-tab,
                                                               text-empty-label, text-empty
``brat_ann``     ``*.txt`` + ``*.ann`` pairs, brat standoff    brat-unpaired, brat-encoding, brat-syntax,
                                                               brat-duplicate-id, brat-unknown-id,
                                                               brat-range, brat-offset, brat-type, brat-empty
"""

from __future__ import annotations

import io
import json
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from PIL import Image, UnidentifiedImageError

from workspace_hub.validate import bounded_json

from .archive import Member

MAX_PROBLEMS = 100
SAMPLES_PER_CLASS = 3
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
ANNOTATIONS = "annotations.json"

Read = Callable[[Member], bytes]


@dataclass
class Report:
    problems: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    kind: str = ""  # text, image or mixed: what the samples are

    def problem(self, code: str, file: str | None, line: int | None, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append({"code": code, "file": file, "line": line, "message": message})
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append({"code": "too-many-problems", "file": None, "line": None,
                                  "message": f"more than {MAX_PROBLEMS} problems; fix these and upload again"})

    def as_dict(self) -> dict:
        return {"problems": self.problems, "counts": self.counts, "samples": self.samples, "kind": self.kind}


def is_image(head: bytes) -> bool:
    return head.startswith(IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:  # a multi-byte character cut at the end of the head is still text
        return e.start >= len(head) - 3 and b"\0" not in head
    return b"\0" not in head


def validate(fmt: str, members: list[Member], read: Read) -> Report:
    report = Report()
    try:
        VALIDATORS[fmt](members, read, report)
    except Exception as e:  # a validator bug must not lose the upload: it becomes a problem
        report.problem("internal", None, None, f"the {fmt} check stopped: {type(e).__name__}: {e}")
    return report


def _dir(members: list[Member], read: Read, report: Report) -> None:
    classes: dict[str, list[Member]] = {}
    kinds = set()
    for m in members:
        parts = m.name.split("/")
        if len(parts) == 1:
            report.problem("dir-file-at-root", m.name, None, f"{m.name} is not in a class folder; put each file "
                           "in the folder of its class (<class>/<file>)")
            continue
        if len(parts) > 2:
            report.problem("dir-nested", m.name, None, f"{m.name} is nested; the dir format is exactly "
                           "<class>/<file>")
            continue
        classes.setdefault(parts[0], []).append(m)
        kind = "image" if is_image(m.head) else "text" if is_text(m.head) else None
        if kind is None:
            report.problem("dir-unknown-file", m.name, None, f"{m.name} is neither UTF-8 text nor a PNG, JPEG, "
                           "GIF, BMP or WebP image")
        kinds.add(kind)
    for name in sorted(classes):
        if not any(m.size for m in classes[name]):
            report.problem("dir-empty-class", name + "/", None, f"class {name} has no non-empty file")
    if len(classes) < 2:
        report.problem("dir-one-class", None, None, f"found {len(classes)} class folder(s); a classification "
                       "dataset needs at least two")
    report.counts = {name: len(files) for name, files in sorted(classes.items())}
    report.samples = [m.name for name in sorted(classes) for m in classes[name][:SAMPLES_PER_CLASS]]
    kinds.discard(None)
    report.kind = kinds.pop() if len(kinds) == 1 else "mixed" if kinds else ""


COCO = {
    "images": ("id", "file_name", "width", "height"),
    "categories": ("id", "name"),
    "annotations": ("id", "image_id", "category_id", "bbox"),
}


def _json(members: list[Member], read: Read, report: Report) -> None:
    by_name = {m.name: m for m in members}
    if ANNOTATIONS not in by_name:
        others = [m.name for m in members if m.name.endswith(".json")]
        report.problem("json-files", None, None, f"no {ANNOTATIONS} at the top of the archive"
                       + (f" (found {', '.join(others[:3])})" if others else ""))
        return
    try:
        doc = bounded_json(read(by_name[ANNOTATIONS]).decode("utf-8"))
    except UnicodeDecodeError as e:
        report.problem("json-syntax", ANNOTATIONS, None, f"not UTF-8 at byte {e.start}")
        return
    except json.JSONDecodeError as e:
        report.problem("json-syntax", ANNOTATIONS, e.lineno, f"line {e.lineno}, column {e.colno}: {e.msg}")
        return
    except ValueError as e:
        report.problem("json-syntax", ANNOTATIONS, None, str(e))
        return
    if not isinstance(doc, dict):
        report.problem("json-schema", ANNOTATIONS, None, "the document must be an object with images, "
                       "categories and annotations")
        return
    tables = {}
    for key, fields in COCO.items():
        rows = doc.get(key)
        if not isinstance(rows, list):
            report.problem("json-schema", ANNOTATIONS, None, f"{key} must be a list")
            return
        tables[key] = {}
        for i, row in enumerate(rows):
            where = f"{key}[{i}]"
            if not isinstance(row, dict) or any(f not in row for f in fields):
                report.problem("json-schema", ANNOTATIONS, None, f"{where} needs {', '.join(fields)}")
                continue
            if not isinstance(row["id"], int) or isinstance(row["id"], bool):
                report.problem("json-schema", ANNOTATIONS, None, f"{where}.id must be an integer")
                continue
            if row["id"] in tables[key]:
                report.problem("json-duplicate-id", ANNOTATIONS, None, f"{where}.id {row['id']} is used twice")
                continue
            tables[key][row["id"]] = (where, row)
    sizes = {}
    for image_id, (where, row) in tables["images"].items():
        name = row["file_name"]
        member = by_name.get(name) if isinstance(name, str) else None
        if member is None:
            report.problem("json-image-missing", ANNOTATIONS, None, f"{where}.file_name {str(name)[:80]!r} is "
                           "not in the archive")
            continue
        declared = (row["width"], row["height"])
        try:
            actual = Image.open(io.BytesIO(read(member))).size  # reads the header only
        except (UnidentifiedImageError, OSError, ValueError) as e:
            report.problem("json-image-size", name, None, f"cannot read the image: {e}")
            continue
        if tuple(declared) != actual:
            report.problem("json-image-size", name, None, f"{where} says {declared[0]}x{declared[1]}, the image is "
                           f"{actual[0]}x{actual[1]}")
        sizes[image_id] = actual
    counts = Counter()
    categories = {cid: row["name"] for cid, (_, row) in tables["categories"].items()}
    for _, (where, row) in tables["annotations"].items():
        if row["image_id"] not in tables["images"]:
            report.problem("json-unknown-image", ANNOTATIONS, None, f"{where}.image_id {row['image_id']!r} is "
                           "not an image id")
            continue
        if row["category_id"] not in categories:
            report.problem("json-unknown-category", ANNOTATIONS, None, f"{where}.category_id "
                           f"{row['category_id']!r} is not a category id")
            continue
        box = row["bbox"]
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float))
                                                                and not isinstance(v, bool) for v in box)):
            report.problem("json-schema", ANNOTATIONS, None, f"{where}.bbox must be [x, y, width, height]")
            continue
        size = sizes.get(row["image_id"])
        x, y, w, h = box
        if size and (x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > size[0] or y + h > size[1]):
            report.problem("json-box-outside-image", ANNOTATIONS, None, f"{where}.bbox {box} is not inside its "
                           f"{size[0]}x{size[1]} image")
            continue
        counts[categories[row["category_id"]]] += 1
    report.counts = dict(sorted(counts.items()))
    report.samples = [row["file_name"] for _, row in list(tables["images"].values())[:8]
                      if row["file_name"] in by_name]
    report.kind = "image"


LINE = re.compile(r"^([^\t]*)\t(.*)$")


def _single_text(members: list[Member], read: Read, report: Report) -> None:
    if len(members) != 1:
        report.problem("text-files", None, None, f"found {len(members)} files; single_text is one UTF-8 file "
                       "with one 'label<TAB>text' sample a line")
        return
    member = members[0]
    counts = Counter()
    raw = read(member)
    for number, line in enumerate(raw.split(b"\n"), 1):
        line = line.rstrip(b"\r")
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            report.problem("text-encoding", member.name, number, f"line {number} is not UTF-8")
            continue
        match = LINE.match(text)
        if not match:
            report.problem("text-no-tab", member.name, number, f"line {number} has no tab between label and text")
            continue
        if not match.group(1).strip():
            report.problem("text-empty-label", member.name, number, f"line {number} has an empty label")
            continue
        counts[match.group(1)] += 1
    if not counts and not report.problems:
        report.problem("text-empty", member.name, None, "the file holds no samples")
    report.counts = dict(sorted(counts.items()))
    report.samples = [member.name]
    report.kind = "text"




def _brat(members: list[Member], read: Read, report: Report) -> None:
    stems = {}
    conf = None
    for m in members:
        stem, ext = posixpath.splitext(m.name)
        if m.name == "annotation.conf":
            conf = m
        elif ext in (".txt", ".ann"):
            stems.setdefault(stem, {})[ext] = m
        elif posixpath.basename(m.name) not in ("visual.conf", "tools.conf", "kb_shortcuts.conf"):
            report.problem("brat-unpaired", m.name, None, f"{m.name} is neither .txt, .ann nor a brat .conf file")
    types = _conf_types(read(conf)) if conf else None
    counts = Counter()
    for stem in sorted(stems):
        pair = stems[stem]
        if set(pair) != {".txt", ".ann"}:
            have, missing = next(iter(pair)), ".ann" if ".txt" in pair else ".txt"
            report.problem("brat-unpaired", pair[have].name, None, f"{stem}{have} has no {stem}{missing}")
            continue
        try:
            text = read(pair[".txt"]).decode("utf-8")
            ann = read(pair[".ann"]).decode("utf-8")
        except UnicodeDecodeError:
            report.problem("brat-encoding", stem + ".txt/.ann", None, "not UTF-8")
            continue
        _brat_pair(pair[".ann"].name, text, ann, types, counts, report)
    if not counts and not report.problems:
        report.problem("brat-empty", None, None, "no .txt/.ann pair holds an annotation")
    report.counts = dict(sorted(counts.items()))
    report.samples = [stems[s][".txt"].name for s in sorted(stems) if ".txt" in stems[s]][:5]
    report.kind = "text"


def _conf_types(raw: bytes) -> set[str]:
    """Every type name annotation.conf declares (entities, relations, events, attributes)."""
    names = set()
    for line in raw.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            names.add(re.split(r"[\s\t]", line.lstrip("!-"), maxsplit=1)[0])
    return names


# The common line, a one-fragment entity, is matched by one regex over the whole file (C speed); every other
# line takes the general path.  Line numbers are counted only for the lines a problem names.
T_LINE = re.compile(r"^(T\d+)\t([^\t :\r\n]+) (\d+) (\d+)\t([^\t\r\n]*)\r?$", re.M)
OTHER_LINE = re.compile(r"^(?!T\d+\t[^\t :\r\n]+ \d+ \d+\t[^\t\r\n]*\r?$)(.*\S.*)$", re.M)


def _spans(spec: str) -> list[tuple[int, int]] | None:
    """``"0 5;9 12"`` as [(0, 5), (9, 12)], or None when it is not that shape."""
    spans = []
    for part in spec.split(";"):
        start, _, end = part.partition(" ")
        if not (start.isdigit() and end.isdigit()):
            return None
        spans.append((int(start), int(end)))
    return spans


def _brat_pair(name: str, text: str, ann: str, types: set | None, counts: Counter, report: Report) -> None:
    ids = set()
    refs = []  # (position, id)
    size = len(text)
    found = Counter()  # this pair's entities, added to *counts* at the end

    def problem(code: str, position: int, message: str) -> None:
        number = ann.count("\n", 0, position) + 1
        report.problem(code, name, number, f"line {number}: {message}")

    def entity(position: int, ident: str, label: str, spans: list, said: str) -> None:
        if ident in ids:
            return problem("brat-duplicate-id", position, f"{ident} is defined twice")
        ids.add(ident)
        if types is not None and label not in types:
            problem("brat-type", position, f"{label} is not declared in annotation.conf")
        if any(not 0 <= a <= b <= size for a, b in spans):
            return problem("brat-range", position, f"{ident} has a span outside the text ({size} characters)")
        there = " ".join(text[a:b] for a, b in spans)
        if there != said:
            return problem("brat-offset", position, f"{ident} says {said[:60]!r} but the text at those offsets is "
                           f"{there[:60]!r}")
        found[label] += 1

    entities = T_LINE.findall(ann)
    clean = True
    for ident, label, start, end, said in entities:  # the fast pass: stop at the first doubt
        a, b = int(start), int(end)
        if ident in ids or (types is not None and label not in types) or not a <= b <= size or text[a:b] != said:
            clean = False
            break
        ids.add(ident)
        found[label] += 1
    if not clean:  # the general path, with positions, finds and reports what is wrong
        ids.clear()
        found.clear()
        for m in T_LINE.finditer(ann):
            ident, label, start, end, said = m.groups()
            entity(m.start(), ident, label, [(int(start), int(end))], said)
    lines = ann.count("\n") + (not ann.endswith("\n"))
    others = OTHER_LINE.finditer(ann) if len(entities) < lines else ()
    for m in others:
        position, fields = m.start(), m.group(1).rstrip("\r").split("\t")
        ident = fields[0]
        kind = ident[:1]
        if len(fields) < 2 or not kind or kind not in "TREAMN#*" \
                or not (ident[1:].isdigit() or (kind in "#*" and not ident[1:])):
            problem("brat-syntax", position, "expected an id (T1, R1, E1, A1, N1, #1) and a tab")
            continue
        label, _, rest = fields[1].partition(" ")
        label = label.partition(":")[0]
        if kind == "T":
            spans = _spans(rest) if len(fields) > 2 else None
            if spans is None:
                problem("brat-syntax", position, "an entity is 'T<n><TAB>type start end[;start end]<TAB>text'")
            else:
                entity(position, ident, label, spans, fields[2])
            continue
        if kind != "*":
            if ident in ids:
                problem("brat-duplicate-id", position, f"{ident} is defined twice")
                continue
            ids.add(ident)
        if types is not None and kind in "REAM" and label not in types:
            problem("brat-type", position, f"{label} is not declared in annotation.conf")
        if kind in "R*":
            refs += [(position, a.rpartition(":")[2]) for a in rest.split()]
        elif kind == "E":
            refs += [(position, a.rpartition(":")[2]) for a in fields[1].split() if ":" in a]
        else:  # A, M, N, #: a target id after the type
            target = rest.split(" ", 1)[0]
            if not target:
                problem("brat-syntax", position, "an attribute, normalization or note names a target id")
                continue
            refs.append((position, target))
    for position, ref in refs:
        if ref not in ids:
            problem("brat-unknown-id", position, f"{ref!r} is not defined")
    counts.update(found)


VALIDATORS = {"dir": _dir, "json": _json, "single_text": _single_text, "brat_ann": _brat}
