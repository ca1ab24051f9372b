"""Service endpoints without an engine (replicas never start here): what a service may serve, the address's
authorization, and the matrix of who may do what."""

import threading
import uuid
from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from workspace_hub.executor import Executor, ProbeFailed, ReplicaHandle, Response
from workspace_library.models import Algorithm, Image, ImageStatus, Service, ServiceStatus, Status, Visibility
from workspace_library.services.replicas import Services

from .test_library_api import EXPECTED, ROLES, allowed

INTERFACE = {"name": "predict", "method": "POST", "params": [{"name": "text", "type": "String", "test_value": "x"}]}


@pytest.fixture(autouse=True)
def no_engine(library):
    service, _ = library

    def refuse(*args):
        raise ProbeFailed("exit", "no engine in unit tests")

    service.services._start_one = refuse


def predict_algorithm(service, predict: bool = True, status=Status.online) -> int:
    with service.sessions() as db:
        algorithm = Algorithm(name=f"p{uuid.uuid4().hex[:8]}", version="1", owner="olive", visibility=Visibility.public,
                              status=status, errors=[], progress="",
                              predict={"command": ["python3"], "interface": INTERFACE} if predict else None)
        if predict:
            algorithm.images.append(Image(role="predict", filename="predict-p-cpu.tar", sha256="0" * 64, size=1,
                                          tag="algorithms/x/p:1-predict", status=ImageStatus.valid))
        db.add(algorithm)
        db.commit()
        return algorithm.id


def test_a_service_needs_an_online_predict_image(library, as_):
    service, _ = library
    for algorithm in (predict_algorithm(service, predict=False), predict_algorithm(service, status=Status.offline)):
        r = as_["owner"]("POST", "services", json={"name": f"s{uuid.uuid4().hex[:6]}", "algorithm": algorithm})
        assert r.status_code == 409 and r.json()["error"]["code"] == "no-predict"
    r = as_["owner"]("POST", "services", json={"name": "nothing"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "model"


def test_replicas_that_cannot_start_fail_the_service_with_a_reason(library, as_):
    service, _ = library
    created = as_["owner"]("POST", "services", json={"name": f"s{uuid.uuid4().hex[:6]}", "replicas": 1,
                                                     "algorithm": predict_algorithm(service)}).json()
    for _ in range(3):
        service.services.ensure(created["id"])
    after = as_["owner"]("GET", f"services/{created['id']}").json()
    assert after["status"] == "failed" and "3 times in a row" in after["message"]


def add_service(service, visibility: str) -> int:
    with service.sessions() as db:
        row = Service(name=f"s{uuid.uuid4().hex[:8]}", version="1", owner="olive", visibility=Visibility(visibility),
                      status=Status.online, errors=[], progress="", image="algorithms/x/p:1-predict",
                      interface=INTERFACE, replicas=0, state=ServiceStatus.stopped, message="", revision=1,
                      algorithm_id=predict_algorithm(service))
        db.add(row)
        db.commit()
        return row.id, row.name


CALLS = [("GET", "", None), ("PATCH", "", {"description": "changed"}), ("DELETE", "", None),
         ("POST", "/start", {"replicas": 1}), ("POST", "/stop", {}), ("POST", "/scale", {"replicas": 2}),
         ("POST", "/redo", {}), ("POST", "/test", {}), ("GET", "/logs", None), ("POST", "/serve", {"text": "x"})]


@pytest.mark.parametrize("visibility", list(EXPECTED))
@pytest.mark.parametrize("method,suffix,body", CALLS, ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("role", ROLES)
def test_service_authorization(library, as_, role, visibility, method, suffix, body):
    service, _ = library
    service_id, name = add_service(service, visibility)
    expected = EXPECTED[visibility][role]
    if suffix in ("", "/test", "/serve") and method in ("GET", "POST") and visibility != "private" \
            and role != "anonymous":
        expected = "ok"  # a visible service may be read, tested and called by every user
    if suffix == "/logs" and role == "owner":
        expected = "ok"  # its log holds its callers' requests: the owner's (a preset's too) and admins' alone
    path = f"../serve/olive/{name}/predict" if suffix == "/serve" else f"services/{service_id}{suffix}"
    r = as_[role](method, path, **({"json": body} if body is not None else {}))
    if expected == "ok":
        assert allowed(r.status_code) or (suffix == "/serve" and r.status_code == 503), r.text
    else:
        assert r.status_code == expected, r.text
        with service.sessions() as db:
            assert db.get(Service, service_id).description == "" and db.get(Service, service_id).replicas == 0


class TrialReplica(ReplicaHandle):
    """A predict replica that answers at once: an online test's, in a test without an engine."""

    def __init__(self):
        self.name, self.removed = uuid.uuid4().hex[:12], False

    def request(self, method, path, body=None, headers=None, timeout=30, limit=0):
        return Response(200, b'{"label": "sports"}')

    def running(self):
        return not self.removed

    def wait_healthy(self, timeout, poll=0.2):
        pass

    def remove(self):
        self.removed = True

    def tail(self, lines=15):
        return ""


class TrialEngine(Executor):
    def __init__(self):
        super().__init__()
        self.started = []

    def start_replica(self, spec):
        self.started.append((spec.purpose, spec.key, TrialReplica()))
        return self.started[-1][2]


def test_an_online_test_is_a_short_lived_service_removed_when_idle(tmp_path):
    """One replica, started on the first call and reused; the monitor removes it once idle (issue: an online
    test's container used to outlive the test by hours)."""
    engine = TrialEngine()
    services = Services(None, tmp_path, tmp_path, engine, trial_idle=60)
    for _ in range(2):
        status, body, _ = services.try_out("k", "img", tmp_path, "POST", "/predict", b"{}", {})
        assert (status, body) == (200, b'{"label": "sports"}')
    [(purpose, key, replica)] = engine.started
    assert (purpose, key) == ("test", "k")
    services._reap_trials()
    assert not replica.removed  # just used
    services.pools["test:k"].used -= 61
    services._reap_trials()
    assert replica.removed and "test:k" not in services.pools


def test_a_serving_replica_that_misses_a_check_or_two_keeps_serving(tmp_path):
    """A replica busy with calls may answer /health late: it is replaced after three missed checks in a row
    (Kubernetes' failureThreshold), not at the first, which dropped the calls it held (the serving benchmark
    lost its replica under 32 connections)."""
    class Busy(TrialReplica):
        answers = True

        def healthy(self):
            return self.answers

    services = Services(None, tmp_path, tmp_path, TrialEngine())
    started = []
    services._start_one = lambda service, revision: started.append(Busy()) or started[-1]
    service = SimpleNamespace(key="k", owner="olive", name="news")
    pool = services.pool(1)
    assert services._keep_replicas(pool, service, 1, 1, "") == 0  # started; healthy from the next look
    [replica] = started
    assert services._keep_replicas(pool, service, 1, 1, "") == 1
    replica.answers = False
    for _ in range(2):
        assert services._keep_replicas(pool, service, 1, 1, "") == 1 and not replica.removed
    replica.answers = True  # it answered again: the count starts over
    services._keep_replicas(pool, service, 1, 1, "")
    replica.answers = False
    for _ in range(2):
        services._keep_replicas(pool, service, 1, 1, "")
    assert not replica.removed
    services._keep_replicas(pool, service, 1, 1, "")
    assert replica.removed and len(started) == 2  # the third miss in a row: replaced
    assert "/health failed 3 times in a row" in (tmp_path / "k.log").read_text()


def test_an_idle_online_test_goes_while_the_monitor_is_busy_with_a_service(tmp_path):
    """Issue 25, bug 7: an online test's container was still running 18 minutes after the test, because idle
    tests were only looked at after a whole pass over the services.  Here that pass is stuck (a service whose
    replica takes its whole health timeout), and the idle test is removed all the same."""
    stuck, removed = threading.Event(), threading.Event()

    @contextmanager
    def sessions():
        yield SimpleNamespace(scalars=lambda query: [1])

    engine = TrialEngine()
    services = Services(sessions, tmp_path, tmp_path, engine, interval=0.05, trial_idle=0.2)
    services.ensure = lambda service_id: stuck.wait(60)
    services.try_out("k", "img", tmp_path, "POST", "/predict", b"{}", {})
    [(_, _, replica)] = engine.started
    replica.remove = removed.set
    services.start()
    try:
        assert removed.wait(30), "the idle online test was not removed while the monitor was busy"
    finally:
        stuck.set()
        services.close()


def test_the_metrics_are_prometheus_text_for_admins_only(library):
    """``<prefix>metrics`` is what Prometheus scrapes: valid exposition text (parsed by prometheus_client's own
    parser), naming every service, so only admins read it."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    from workspace_library.services import metrics

    _, base = library
    metrics.CALLS.labels("olive/news", "200").inc()
    metrics.LATENCY.labels("olive/news").observe(0.004)
    answer = requests.get(f"{base}metrics", headers={"Authorization": "token admin-token"}, timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    [calls] = [s for s in families["workspace_library_service_calls"].samples
               if s.labels == {"service": "olive/news", "code": "200"} and s.name.endswith("_total")]
    assert calls.value >= 1
    assert "workspace_library_service_call_seconds" in families
    for token in ("owner-token", None):
        refused = requests.get(f"{base}metrics", headers={"Authorization": f"token {token}"} if token else {},
                               timeout=10)
        assert refused.status_code in (401, 403) and "workspace_library" not in refused.text


def test_p95_is_never_below_p50(tmp_path):
    """Two calls of 12.7 and 9.7 ms showed p50 11.3 and p95 9.45 (issue 25, bug 3): nearest-rank percentiles."""
    from workspace_library.services.replicas import Services

    services = Services(None, tmp_path, tmp_path, executor=None)
    for seconds in (0.0127, 0.0097):
        services._count(services.pool(1), 200, seconds)
    metrics = services.metrics(1)
    assert (metrics["p50_ms"], metrics["p95_ms"]) == (9.7, 12.7)


def test_replicas_that_die_before_serving_end_failed_with_their_last_words(library, as_):
    """A service without a model crash-looped as `starting` with no message (issue 25, bug 4): replicas that
    exit before ever answering /health count as failed starts; the third ends it, and their output is in the
    service's log."""
    service, _ = library

    class Dead:
        def __init__(self):
            self.name, self.started = uuid.uuid4().hex[:12], 0.0

        def running(self):
            return False

        def healthy(self):
            return False

        def tail(self, lines=15):
            return "FileNotFoundError: /project/model/model.pkl"

        def remove(self):
            pass

    started = []
    service.services._start_one = lambda svc, revision: started.append(Dead()) or started[-1]
    created = as_["owner"]("POST", "services", json={"name": f"s{uuid.uuid4().hex[:6]}", "replicas": 1,
                                                     "algorithm": predict_algorithm(service)}).json()
    for _ in range(6):
        service.services.ensure(created["id"])
    after = as_["owner"]("GET", f"services/{created['id']}").json()
    assert after["status"] == "failed" and "3 times in a row" in after["message"]
    assert "model.pkl" not in after["message"]  # a public service's status is anyone's; its output is not
    assert "model.pkl" in as_["owner"]("GET", f"services/{created['id']}/logs").text  # the owner's log has it
    assert len(started) == 3  # backed off: no fourth start
