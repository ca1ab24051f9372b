"""The four dataset formats: a good example of each passes, and each rule has its stable code, file and line."""

import io
import json

import pytest
from PIL import Image

from workspace_library.datasets.archive import HEAD_BYTES, Member
from workspace_library.datasets.formats import validate


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(out, "PNG")
    return out.getvalue()


def check(fmt: str, files: dict) -> tuple[list, dict]:
    members = [Member(name, name, len(data), "-", data[:HEAD_BYTES]) for name, data in files.items()]
    report = validate(fmt, members, lambda m: files[m.name])
    return [(p["code"], p["file"], p["line"]) for p in report.problems], report.counts


COCO = {"images": [{"id": 1, "file_name": "img/a.png", "width": 40, "height": 30}],
        "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 10]},
                        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [20, 10, 20, 20]}]}
TEXT = "Sony bought Columbia in Tokyo."
ANN = "T1\tOrganization 0 4\tSony\nT2\tOrganization 12 20\tColumbia\nT3\tLocation 24 29\tTokyo\n" \
      "R1\tAcquired Arg1:T1 Arg2:T2\nA1\tConfident T1\n#1\tAnnotatorNotes T3\tcity\n"


def test_good_examples_pass():
    assert check("dir", {"cats/1.txt": b"a cat", "dogs/1.png": png(4, 4)}) == ([], {"cats": 1, "dogs": 1})
    assert check("json", {"annotations.json": json.dumps(COCO).encode(), "img/a.png": png(40, 30)}) == \
        ([], {"circle": 1, "square": 1})
    assert check("single_text", {"news.tsv": "sport\tA goal.\nfinance\tRates fall.\r\n\n".encode()}) == \
        ([], {"finance": 1, "sport": 1})
    assert check("brat_ann", {"doc1.txt": TEXT.encode(), "doc1.ann": ANN.encode()}) == \
        ([], {"Location": 1, "Organization": 2})


def test_a_discontinuous_brat_span_is_checked_fragment_by_fragment():
    ann = "T1\tOrganization 0 4;12 20\tSony Columbia\n"
    assert check("brat_ann", {"d.txt": TEXT.encode(), "d.ann": ann.encode()}) == ([], {"Organization": 1})


@pytest.mark.parametrize("files, problem", [
    ({"a.txt": b"x", "cats/1.txt": b"x", "dogs/1.txt": b"y"}, ("dir-file-at-root", "a.txt", None)),
    ({"cats/x/1.txt": b"x", "cats/1.txt": b"x", "dogs/1.txt": b"y"}, ("dir-nested", "cats/x/1.txt", None)),
    ({"cats/1.txt": b"", "dogs/1.txt": b"y"}, ("dir-empty-class", "cats/", None)),
    ({"cats/1.txt": b"x"}, ("dir-one-class", None, None)),
    ({"cats/1.bin": b"\x00\x01\x02", "dogs/1.txt": b"y"}, ("dir-unknown-file", "cats/1.bin", None)),
])
def test_dir_rules(files, problem):
    assert problem in check("dir", files)[0]


def coco(**changes) -> dict:
    doc = json.loads(json.dumps(COCO))
    for path, value in changes.items():
        table, index, field = path.split("__")
        doc[table][int(index)][field] = value
    return {"annotations.json": json.dumps(doc).encode(), "img/a.png": png(40, 30)}


@pytest.mark.parametrize("files, problem", [
    ({"img/a.png": png(4, 4)}, ("json-files", None, None)),
    ({"annotations.json": b'{\n "images": [,]}', "img/a.png": png(4, 4)}, ("json-syntax", "annotations.json", 2)),
    ({"annotations.json": b"[]"}, ("json-schema", "annotations.json", None)),
    (coco(annotations__1__bbox=[35, 10, 20, 20]), ("json-box-outside-image", "annotations.json", None)),
    (coco(annotations__1__bbox=[-1, 0, 5, 5]), ("json-box-outside-image", "annotations.json", None)),
    (coco(annotations__1__bbox=[1, 2, 3]), ("json-schema", "annotations.json", None)),
    (coco(annotations__1__category_id=9), ("json-unknown-category", "annotations.json", None)),
    (coco(annotations__1__image_id=9), ("json-unknown-image", "annotations.json", None)),
    (coco(annotations__1__id=1), ("json-duplicate-id", "annotations.json", None)),
    (coco(images__0__width=41), ("json-image-size", "img/a.png", None)),
    (coco(images__0__file_name="img/missing.png"), ("json-image-missing", "annotations.json", None)),
])
def test_json_rules(files, problem):
    assert problem in check("json", files)[0]


@pytest.mark.parametrize("files, problem", [
    ({"a.tsv": b"x\ty", "b.tsv": b"x\ty"}, ("text-files", None, None)),
    ({"a.tsv": b"sport\tok\nno tab here\n"}, ("text-no-tab", "a.tsv", 2)),
    ({"a.tsv": b"sport\tok\n\tno label\n"}, ("text-empty-label", "a.tsv", 2)),
    ({"a.tsv": b"sport\tok\nsport\t\xff\xfe\n"}, ("text-encoding", "a.tsv", 2)),
    ({"a.tsv": b"\n\n"}, ("text-empty", "a.tsv", None)),
])
def test_single_text_rules(files, problem):
    assert problem in check("single_text", files)[0]


@pytest.mark.parametrize("ann, problem", [
    ("T1\tOrganization 0 5\tSony\n", ("brat-offset", "d.ann", 1)),
    ("T1\tOrganization 0 4\tSony\nT2\tLocation 24 99\tTokyo\n", ("brat-range", "d.ann", 2)),
    ("T1\tOrganization 0 4\tSony\nT1\tLocation 24 29\tTokyo\n", ("brat-duplicate-id", "d.ann", 2)),
    ("T1\tOrganization 0 4\tSony\nR1\tOwns Arg1:T1 Arg2:T7\n", ("brat-unknown-id", "d.ann", 2)),
    ("T1 Organization 0 4 Sony\n", ("brat-syntax", "d.ann", 1)),
    ("T1\tOrganization zero four\tSony\n", ("brat-syntax", "d.ann", 1)),
])
def test_brat_rules(ann, problem):
    assert problem in check("brat_ann", {"d.txt": TEXT.encode(), "d.ann": ann.encode()})[0]


def test_brat_pairs_and_declared_types():
    assert ("brat-unpaired", "lonely.txt", None) in check("brat_ann", {"lonely.txt": b"x"})[0]
    conf = b"[entities]\nOrganization\n[relations]\n[events]\n[attributes]\n"
    problems, _ = check("brat_ann", {"annotation.conf": conf, "d.txt": TEXT.encode(),
                                     "d.ann": b"T1\tOrganization 0 4\tSony\nT2\tLocation 24 29\tTokyo\n"})
    assert problems == [("brat-type", "d.ann", 2)]


def test_a_validator_never_raises_on_hostile_content():
    hostile = {"annotations.json": b"[" * 100_000, "d.ann": b"\x00" * 10, "d.txt": b"\xff"}
    for fmt in ("dir", "json", "single_text", "brat_ann"):
        problems, _ = check(fmt, hostile)
        assert problems and all(code != "internal" for code, _, _ in problems)
