"""The validator as a library: streaming details and the fuzz bound.

The corpus from real `docker save` output is in tests/integration; these tests
build small archives in memory so they run without an engine.
"""

import gzip
import hashlib
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from harness.imagetars import image_members, make_layer, member, write_members
from workspace_hub.tarstream import MAX_EXTENDED_HEADER
from workspace_hub.validate import check_tar


@pytest.fixture
def valid_tar(tmp_path):
    layer = make_layer(("app/", None, tarfile.DIRTYPE, ""), ("app/run", b"#!/bin/sh\n", tarfile.REGTYPE, ""),
                       ("dev/null", None, tarfile.CHRTYPE, ""), ("app/link", None, tarfile.LNKTYPE, "app/run"))
    return write_members(tmp_path / "train-unit-cpu.tar", image_members(layer))


def test_a_minimal_archive_is_valid(valid_tar):
    report = check_tar(valid_tar)
    assert report.valid, report.errors
    assert report.image["cmd"] == ["/bin/true"]


def test_long_names_through_pax_headers_are_checked(tmp_path):
    layer = make_layer(("a/" * 80 + "../escape", b"x", tarfile.REGTYPE, ""))
    report = check_tar(write_members(tmp_path / "train-pax-cpu.tar", image_members(layer)))
    assert [e.code for e in report.errors] == ["layer-unsafe-path"]


def test_an_oversized_pax_header_is_refused_without_reading_it(tmp_path):
    layer = make_layer(("x" * (MAX_EXTENDED_HEADER + 10), b"x", tarfile.REGTYPE, ""))
    report = check_tar(write_members(tmp_path / "train-bigpax-cpu.tar", image_members(layer)))
    assert "layer-corrupt" in {e.code for e in report.errors}


def test_a_zstd_layer_is_decompressed_for_its_diff_id(tmp_path):
    import zstandard

    layer = make_layer(("app/run", b"#!/bin/sh\n", tarfile.REGTYPE, ""))
    members = image_members(layer)
    members[0] = member("l1/layer.tar", zstandard.ZstdCompressor().compress(layer))
    report = check_tar(write_members(tmp_path / "train-zstd-cpu.tar", members))
    assert report.valid, report.errors
    assert report.image["layers"][0]["compression"] == "zstd"


def test_a_gzip_bomb_stops_at_the_size_limit(tmp_path):
    layer = make_layer(("zeros", bytes(50 * 1024**2), tarfile.REGTYPE, ""))
    members = image_members(layer)
    members[0] = member("l1/layer.tar", gzip.compress(layer, compresslevel=9))
    path = write_members(tmp_path / "train-bomb-cpu.tar", members)
    report = check_tar(path, max_uncompressed=10 * 1024**2)
    assert [e.code for e in report.errors] == ["size-limit"]


MUTATIONS = st.lists(
    st.tuples(st.sampled_from(["flip", "cut", "insert", "zero"]), st.floats(0, 1), st.binary(min_size=1, max_size=8)),
    min_size=1, max_size=4,
)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=MUTATIONS)
def test_mutated_archives_get_clean_verdicts(valid_tar, tmp_path, mutations):
    """Whatever the bytes, the verdict is a Report: never an exception, never a hang."""
    data = bytearray(valid_tar.read_bytes())
    for op, where, payload in mutations:
        at = int(where * (len(data) - 1))
        if op == "flip":
            data[at] ^= payload[0] or 1
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = payload
        else:
            data[at:at + 512] = bytes(min(512, len(data) - at))
        if not data:
            data = bytearray(b"\0")
    path = tmp_path / "train-fuzz-cpu.tar"
    path.write_bytes(bytes(data))
    report = check_tar(path, max_uncompressed=64 * 1024**2)
    assert isinstance(report.valid, bool)
    assert report.valid or report.errors


def validator_view(path):
    """{normalised name: sha256} of the regular members the validator read."""
    from workspace_hub.validate import DEFAULT_ARCHITECTURES, _Check

    check = _Check(path, 64 * 1024**2, DEFAULT_ARCHITECTURES, base_env=False)
    check.read_archive()
    return {name: blob.sha256 for name, blob in check.blobs.items()}


def reference_view(path):
    """The same, as Python's tarfile reads it in its most permissive mode (past end markers, no errors)."""
    import posixpath

    seen = {}
    with tarfile.open(path, "r:*", ignore_zeros=True, errorlevel=0) as tar:
        for info in tar:
            if info.isreg():
                name = posixpath.normpath(info.name).lstrip("/")
                seen[name] = "sha256:" + hashlib.sha256(tar.extractfile(info).read()).hexdigest()
    return seen


EXTRA_NAMES = st.sampled_from(["manifest.json", "./manifest.json", "././manifest.json", "l1//layer.tar",
                               "l1/./layer.tar", "extra.json", "a/" * 60 + "long.json"])


@settings(max_examples=150, deadline=4000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.lists(st.tuples(EXTRA_NAMES, st.sampled_from(["plain", "pax-path", "sparse"]),
                                st.binary(max_size=64)), max_size=3),
       compress=st.booleans(), trailer=st.sampled_from([b"", b"\0" * 1024, "gzip-member"]))
def test_a_valid_verdict_means_the_reference_reader_sees_the_same_members(valid_tar, tmp_path, extra, compress,
                                                                           trailer):
    """Parser differential: any archive the validator accepts, tarfile reads member for member alike."""
    from harness.imagetars import read_members

    members = read_members(valid_tar)
    for name, how, data in extra:
        info, data = member("decoy" if how != "plain" else name, data)
        if how == "pax-path":
            info.pax_headers = {"path": name}
        elif how == "sparse":
            info.pax_headers = {"GNU.sparse.name": name}
        members.append((info, data))
    path = write_members(tmp_path / "train-diff-cpu.tar", members, compress=compress)
    if trailer == "gzip-member":
        with open(path, "ab") as f:
            f.write(gzip.compress(b"\0" * 512 + bytes(tarfile.TarInfo("late").tobuf())))
    elif trailer:
        with open(path, "ab") as f:
            f.write(trailer)
    report = check_tar(path)
    if report.valid:
        assert validator_view(path) == reference_view(path)
