"""What one user does never changes what another runs, reads or waits for: the rules, without an engine.

The same attacks run through the real hub and engine in tests/integration/test_tenants.py; here each
rule is pinned where a fake is enough (the scheduler's choices, names that only a stand-in hub can
create, the one place that decides visibility).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from harness import library as harness_library
from workspace_hub.executor import Executor, Handle
from workspace_library.db import open_database
from workspace_library.models import Model, Run, RunStatus, Visibility
from workspace_library.runs.queue import Runs

from .test_models import trained

ROOT = Path(__file__).resolve().parents[2] / "workspace_library"


# ---- the queue: fair slots, and a run that cannot start frees its slot

class Started(Handle):
    """What the fake engine started; nothing watches it (the test ends runs by hand)."""

    image_id = "sha256:" + "0" * 64

    def remove(self):
        pass


class FakeEngine(Executor):
    def __init__(self):
        self.started: list[str] = []

    def start_batch(self, spec):
        self.started.append(spec.key)
        return Started()

    def find(self, key):
        return None


@pytest.fixture
def queue(tmp_path):
    sessions = open_database(f"sqlite:///{tmp_path / 'library.sqlite'}")
    engine = FakeEngine()
    runs = Runs(sessions, tmp_path / "library" / "runs", tmp_path, engine, slots=2, per_user=2)
    runs._watch = lambda *args, **kwargs: None
    return runs, sessions, engine


def queued(sessions, owner: str, resources: dict | None = None) -> int:
    """A queued run of *owner* on a public dataset (the scheduler checks, at launch, that its owner may use it)."""
    from workspace_library.models import Dataset, Status, now

    with sessions() as db:
        dataset = Dataset(name="d", version=uuid.uuid4().hex[:8], owner="ada", visibility=Visibility.public,
                          status=Status.online, errors=[], progress="", format="dir", test_mode="ratio", uploads={},
                          size=0, manifests={}, report={})
        db.add(dataset)
        db.flush()
        run = Run(name=f"r{uuid.uuid4().hex[:6]}", owner=owner, status=RunStatus.queued, queued_at=now(),
                  dataset_id=dataset.id, image="x", dataset_manifests={}, hyperparameters={},
                  resources=resources or {}, seed=1)
        db.add(run)
        db.commit()
        return run.id


def status(sessions, run_id: int) -> Run:
    with sessions() as db:
        return db.get(Run, run_id)


def end(sessions, run_id: int) -> None:
    with sessions() as db:
        db.get(Run, run_id).status = RunStatus.succeeded
        db.commit()


def test_a_user_who_queues_many_runs_does_not_make_another_wait_for_all_of_them(queue):
    runs, sessions, _ = queue
    mallory = [queued(sessions, "mallory") for _ in range(6)]
    assert runs.schedule() == mallory[:2]  # two slots, both hers: nobody else asked
    victor = queued(sessions, "victor")
    end(sessions, mallory[0])
    assert runs.schedule() == [victor]  # the next free slot is victor's, not her third run's
    end(sessions, mallory[1])
    assert runs.schedule() == [mallory[2]]


def test_a_run_that_cannot_become_a_container_fails_and_frees_its_slot(queue):
    runs, sessions, engine = queue
    broken = queued(sessions, "mallory", {"mem_gb": float("nan")})  # written past the API, which refuses NaN
    victor = queued(sessions, "victor")
    runs.schedule()
    runs.schedule()
    failed = status(sessions, broken)
    assert (failed.status, failed.reason) == (RunStatus.failed, "platform")
    assert "could not be prepared" in failed.message
    assert status(sessions, victor).status == RunStatus.running and len(engine.started) == 1


def test_a_queued_run_whose_dataset_went_private_fails_when_its_turn_comes(queue):
    runs, sessions, engine = queue
    from workspace_library.models import Dataset

    run_id = queued(sessions, "mallory")
    with sessions() as db:
        db.get(Dataset, db.get(Run, run_id).dataset_id).visibility = Visibility.private  # ada withdrew it
        db.commit()
    runs.schedule()
    failed = status(sessions, run_id)
    assert (failed.status, failed.reason) == (RunStatus.failed, "platform") and "cannot start" in failed.message
    assert engine.started == []


def test_a_run_stuck_starting_without_a_container_can_be_stopped(queue):
    runs, sessions, _ = queue
    run_id = queued(sessions, "mallory")
    with sessions() as db:
        db.get(Run, run_id).status = RunStatus.starting
        db.commit()
    runs.stop(run_id)
    assert status(sessions, run_id).status == RunStatus.stopped


# ---- sharing is an exact grant; names that only a stand-in hub can create

@pytest.mark.parametrize("name", ["al_ce", "%", "ALICE", "alice ", "_lice"])
def test_a_model_shared_with_alice_is_seen_by_alice_alone(library, as_, tmp_path, monkeypatch, name):
    service, base = library
    monkeypatch.setitem(harness_library.USERS, "alice-token", {"kind": "user", "name": "alice", "admin": False})
    monkeypatch.setitem(harness_library.USERS, "lookalike", {"kind": "user", "name": name, "admin": False})
    model = trained(service, tmp_path, {"m": b"secret"}, name=f"shared-{uuid.uuid4().hex[:6]}")
    assert as_["owner"]("POST", f"models/{model}/share", json={"user": "alice"}).status_code == 200
    alice, lookalike = (harness_library.Client(base, token) for token in ("alice-token", "lookalike"))
    assert model in [m["id"] for m in alice("GET", "models", params={"per_page": 100}).json()["items"]]
    assert model not in [m["id"] for m in lookalike("GET", "models", params={"per_page": 100}).json()["items"]]
    assert lookalike("GET", f"models/{model}").status_code == 404
    assert lookalike("POST", f"models/{model}/transfer", json={}).status_code == 404
    as_["owner"]("DELETE", f"models/{model}/share/alice")
    assert alice("GET", f"models/{model}").status_code == 404  # unsharing takes it back at once


# ---- bodies: non-finite numbers never reach a schema or a rule

@pytest.mark.parametrize("body", ['{"name": "x", "algorithm": 1, "dataset": 1, "resources": {"mem_gb": NaN}}',
                                  '{"name": "x", "algorithm": 1, "dataset": 1, "train_ratio": Infinity}',
                                  '{"name": "x", "algorithm": 1, "dataset": 1, "train_ratio": -Infinity}',
                                  '{"name": "x", "algorithm": 1, "dataset": 1, "seed": 1e999}'])
def test_non_finite_numbers_are_refused_when_the_body_is_parsed(as_, body):
    r = as_["owner"]("POST", "runs", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid-json", r.text
    assert "finite" in r.json()["error"]["message"]


@pytest.mark.parametrize("body", [{"dataset": [1, 2]}, {"name": ["x"]}, {"name": "../../Evil<script>"},
                                  {"name": "x" * 300}, {"name": "UPPER case"}, {"dataset": {"id": 1}},
                                  {"parent_model": 1}])
def test_a_transfer_body_follows_its_schema(library, as_, tmp_path, body):
    service, _ = library
    model = trained(service, tmp_path, {"m": b"w"}, name=f"t{uuid.uuid4().hex[:6]}", transfer=True)
    r = as_["owner"]("POST", f"models/{model}/transfer", json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid-field", r.text


# ---- quotas count models too, and a dry run tells only the caller's usage

def test_models_count_against_the_quota(library, as_, tmp_path, monkeypatch):
    service, _ = library
    from workspace_library.access import Who
    from workspace_library.quota import bytes_used

    with service.sessions() as db:
        before = bytes_used(db, Who("olive"))
    trained(service, tmp_path, {"big": b"w" * 1000}, name=f"q{uuid.uuid4().hex[:6]}")
    with service.sessions() as db:
        assert bytes_used(db, Who("olive")) == before + 1000 + 1  # the model, and its algorithm's 1-byte tar
    monkeypatch.setattr(service, "user_quota_bytes", before + 1000)
    r = as_["owner"]("POST", "models/upload", params={"name": "more"}, data=b"PK" + b"x" * 100,
                     headers={"Content-Type": "application/zip"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "quota", r.text
    assert "quota" in r.json()["error"]["message"] and "you use" in r.json()["error"]["message"]


def test_a_dry_run_delete_is_the_same_whoever_else_stored_the_content(library, as_, tmp_path):
    service, _ = library
    secret = b"victor's private weights"
    trained(service, tmp_path, {"w": secret}, owner="oscar", name=f"v{uuid.uuid4().hex[:6]}")
    guess = trained(service, tmp_path, {"a": b"x", "g": secret}, name=f"g{uuid.uuid4().hex[:6]}")
    miss = trained(service, tmp_path, {"a": b"x", "g": b"y" * len(secret)}, name=f"m{uuid.uuid4().hex[:6]}")
    answers = [as_["owner"]("DELETE", f"models/{m}", params={"dry_run": "1"}).json() for m in (guess, miss)]
    assert answers[0] == answers[1] and "freed" not in answers[0]
    assert not re.search(r"[0-9a-f]{64}", str(answers))
    with service.sessions() as db:
        assert db.get(Model, guess).visibility == Visibility.private


# ---- one place decides who may see what

# a visibility test, an "owner or admin" test, a grant lookup, or a pattern match where names are compared
VISIBILITY_QUERIES = re.compile(r"\.visibility\s*(!=|==)|admin or|or \S*\.?admin\b|ModelGrant\.user"
                                r"|def can_see|def visible|def get_visible|\.like\(|\.contains\(")


def test_no_handler_decides_visibility_on_its_own():
    """Handlers and rules ask workspace_library/access.py; a query of their own would drift from it."""
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name in ("access.py", "models.py") or "migrations" in path.parts:  # the rule, and the tables
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if VISIBILITY_QUERIES.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


# ---- a replica's answer: bounded in bytes and in time, whatever the replica does

@pytest.fixture
def replica_server():
    """An HTTP/1.0 server (as http.server answers by default) that sends 100 bytes at once or one a second."""
    import http.server
    import threading
    import time

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(1 if self.path == "/fast" else 100):
                    self.wfile.write(b"x" * (100 if self.path == "/fast" else 1))
                    self.wfile.flush()
                    time.sleep(0 if self.path == "/fast" else 1)
            except OSError:  # the reader gave up, as it should
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()


@pytest.mark.parametrize("path, limit, outcome", [("/fast", 1000, 100), ("/fast", 10, "AnswerTooLarge"),
                                                  ("/drip", 1000, "TimeoutError")])
def test_an_answer_is_read_within_its_size_and_its_time(replica_server, path, limit, outcome):
    import http.client
    import time

    from workspace_hub.executor.base import bounded_read

    connection = http.client.HTTPConnection("127.0.0.1", replica_server, timeout=2)
    connection.connect()
    sock = connection.sock
    connection.request("GET", path)
    try:
        result = len(bounded_read(connection.getresponse(), sock, limit, time.monotonic() + 2, 2))
    except Exception as e:  # noqa: BLE001 (the kind of refusal is what is checked)
        result = type(e).__name__
    assert result == outcome


def test_a_run_that_writes_past_its_limit_is_stopped(tmp_path):
    """The guard watches the model folder (links not followed) and stops the run once it passes its limit."""
    import threading

    class Watched(Handle):
        stopped = threading.Event()

        def stop(self, grace=5):
            self.stopped.set()

    runs = Runs(None, tmp_path / "runs", tmp_path, executor=None, guard_interval=0.05)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "link").symlink_to("/dev/zero")  # never counted, never read
    handle, ended, passed = Watched(), threading.Event(), {}
    guard = threading.Thread(target=runs._guard, args=(handle, folder, 1000, ended, passed))
    guard.start()
    (folder / "small").write_bytes(b"x" * 600)
    assert not handle.stopped.wait(0.3)
    (folder / "more").write_bytes(b"x" * 600)
    assert handle.stopped.wait(5) and passed == {"limit": "1000 bytes"}
    ended.set()
    guard.join(5)



def test_an_archive_that_expands_past_the_quota_is_refused_before_its_files_are_stored(library, as_, tmp_path,
                                                                                      monkeypatch):
    """A small zip of repeated text unpacks to 2 MiB: the quota counts the files the library would keep, not the zip."""
    from harness.archives import zip_archive
    from workspace_library.access import Who
    from workspace_library.quota import Quota, bytes_used

    from .test_dataset_api import create, send, wait_final

    service, _ = library
    data = zip_archive(tmp_path / "bomb.zip", [("cats/1.txt", b"a" * (1 << 20)),
                                               ("dogs/1.txt", b"a" * (1 << 20))]).read_bytes()
    with service.sessions() as db:
        used = bytes_used(db, Who("olive"))
    monkeypatch.setattr(service.imports, "quota", Quota(per_user=used + len(data) + 64 * 1024, per_file=1 << 30))
    dataset = create(as_["owner"], f"expands-{uuid.uuid4().hex[:6]}", data)
    assert send(as_["owner"], dataset["id"], data).status_code == 204
    done = wait_final(as_["owner"], dataset["id"])
    assert done["status"] == "failed" and [e["code"] for e in done["errors"]] == ["quota"], done["errors"]
    assert "extracted dataset" in done["errors"][0]["message"]


def test_two_uploads_at_once_cannot_each_take_what_the_quota_leaves(library, as_, tmp_path, monkeypatch):
    """While one upload is still arriving, its bytes count: a second one that fits only without it is refused."""
    import http.client
    import os
    from urllib.parse import urlsplit

    from harness.archives import zip_archive
    from harness.waiting import wait_until
    from workspace_library.access import Who
    from workspace_library.quota import bytes_used

    service, base = library
    with service.sessions() as db:
        used = bytes_used(db, Who("olive"))
    monkeypatch.setattr(service, "user_quota_bytes", used + 1_000_000)
    first, second = (zip_archive(tmp_path / f"{n}.zip", [("w.bin", os.urandom(600_000))]).read_bytes()
                     for n in ("first", "second"))
    url = urlsplit(base)
    slow = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    slow.putrequest("POST", f"{url.path}api/models/upload?name=slow-{uuid.uuid4().hex[:6]}&version=1")
    for header, value in (("Authorization", "token owner-token"), ("Content-Type", "application/zip"),
                          ("Content-Length", str(len(first)))):
        slow.putheader(header, value)
    slow.endheaders()
    slow.send(first[:1000])
    wait_until(lambda: service.quota.reservations.held("olive") == len(first), timeout=10, interval=0.02,
               what="the first upload to be counted")
    r = as_["owner"]("POST", "models/upload", params={"name": f"fast-{uuid.uuid4().hex[:6]}"}, data=second,
                     headers={"Content-Type": "application/zip"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "quota", r.text
    slow.send(first[1000:])
    assert slow.getresponse().status == 201
    wait_until(lambda: service.quota.reservations.held("olive") == 0, timeout=10, interval=0.02,
               what="the finished upload to count as its model only")
