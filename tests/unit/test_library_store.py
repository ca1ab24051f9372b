"""The library's tar store: content-addressed, complete or absent, and the documented cleanups."""

import hashlib
import io

import pytest

from workspace_library.store import TarStore, TooLarge


def test_a_tar_is_stored_under_its_digest_only_when_complete(tmp_path):
    store = TarStore(tmp_path)
    digest, size = store.copy_in(io.BytesIO(b"layer" * 1000), limit=10_000)
    assert digest == hashlib.sha256(b"layer" * 1000).hexdigest() and size == 5000
    assert store.path(digest).read_bytes() == b"layer" * 1000
    with pytest.raises(TooLarge):
        store.copy_in(io.BytesIO(b"x" * 20_000), limit=10_000)
    assert list((tmp_path / "incoming").iterdir()) == []


def test_cleanups_remove_partial_and_unreferenced_tars(tmp_path):
    store = TarStore(tmp_path)
    kept, _ = store.copy_in(io.BytesIO(b"kept"), limit=100)
    dropped, _ = store.copy_in(io.BytesIO(b"dropped"), limit=100)
    store.receive(limit=100).write(b"half an upload")
    assert [p.suffix for p in store.clean_incoming()] == [".part"]
    assert store.remove_unreferenced({kept}) == [store.path(dropped)]
    assert store.path(kept).exists() and not store.path(dropped).exists()
