"""Services' calls for Prometheus, at the library's ``metrics`` (beside the hub's own ``/hub/metrics``).

Per service (``owner/name``): calls by status code, a latency histogram and the calls in flight; per replica,
the calls it answered, those it failed (a 5xx, or no answer), a latency histogram and its calls in flight.
prometheus_client keeps and renders them; the numbers hold under load because each call only adds to a
counter (no list of latencies grows with traffic).  A removed replica's series go with it
(:func:`forget_replica`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)  # seconds
CALLS = Counter("workspace_library_service_calls", "Calls through a service's address, by status code.",
                ["service", "code"], registry=REGISTRY)
LATENCY = Histogram("workspace_library_service_call_seconds", "Seconds a call through a service's address took.",
                    ["service"], registry=REGISTRY,
                    buckets=BUCKETS)
IN_FLIGHT = Gauge("workspace_library_service_in_flight", "Calls through a service's address not answered yet.",
                  ["service"], registry=REGISTRY)
REPLICA_CALLS = Counter("workspace_library_replica_calls", "Calls a service's replica answered.",
                        ["service", "replica"], registry=REGISTRY)
REPLICA_ERRORS = Counter("workspace_library_replica_errors", "Calls a service's replica failed: a 5xx, or no "
                         "answer (refused, reset, too large, too late).", ["service", "replica"], registry=REGISTRY)
REPLICA_LATENCY = Histogram("workspace_library_replica_call_seconds", "Seconds a service's replica took to answer.",
                            ["service", "replica"], registry=REGISTRY, buckets=BUCKETS)
REPLICA_IN_FLIGHT = Gauge("workspace_library_replica_in_flight", "Calls sent to a service's replica, not answered "
                          "yet.", ["service", "replica"], registry=REGISTRY)
REPLICAS = Gauge("workspace_library_service_replicas", "A service's replicas: wanted, and healthy.",
                 ["service", "state"], registry=REGISTRY)


def forget_replica(service: str, replica: str) -> None:
    """A removed replica reports nothing more."""
    for metric in (REPLICA_CALLS, REPLICA_ERRORS, REPLICA_LATENCY, REPLICA_IN_FLIGHT):
        try:
            metric.remove(service, replica)
        except KeyError:  # it never had that series
            pass


def text() -> bytes:
    """The exposition format, as Prometheus scrapes it."""
    return generate_latest(REGISTRY)
